//! `Moment` and `Millis` as columns: stored as the epoch-millisecond integers every table keeps
//! (`BIGINT` on PostgreSQL, `INTEGER` on SQLite), so a row reads into its typed field and a value
//! binds as it is, with no conversion written at each query.

use sqlx::any::{Any, AnyTypeInfo};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::time::{Millis, Moment};

macro_rules! integer_column {
    ($t:ty, $from:path, $to:path) => {
        impl Type<Any> for $t {
            fn type_info() -> AnyTypeInfo {
                <i64 as Type<Any>>::type_info()
            }
            fn compatible(ty: &AnyTypeInfo) -> bool {
                <i64 as Type<Any>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, Any> for $t {
            fn encode_by_ref(&self, buf: &mut <Any as Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
                <i64 as Encode<'q, Any>>::encode_by_ref(&$to(*self), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok($from(<i64 as Decode<'r, Any>>::decode(value)?))
            }
        }
    };
}

integer_column!(Moment, Moment::from_ms, Moment::as_ms);
integer_column!(Millis, Millis::from_ms, Millis::as_ms);
