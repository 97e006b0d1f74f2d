//! Callbacks listed and counted by filter (service, state, day range, the number's last digits),
//! keyset-paged.

use sqlx::{Any, Row};

use super::callbacks::{from_row, CallbackRecord, COLUMNS};
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::callback::State;
use crate::time::Moment;
/// Filters of `GET /callbacks` (all optional).
#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    pub service_name: Option<String>,
    pub phone: Option<String>,
    /// The number's last digits (the console's search); digits only.
    pub phone_suffix: Option<String>,
    /// Empty = every state.
    pub states: Vec<State>,
    pub from_ms: Option<Moment>,
    pub to_ms: Option<Moment>,
    /// Keyset cursor: (desired_ms, id) of the last item already returned.
    pub after: Option<(Moment, String)>,
    pub limit: i64,
}

enum Param {
    Text(String),
    Int(i64),
}

impl Store {
    /// One page ordered by (desired_ms, id); keyset pagination stays stable under concurrent inserts.
    pub async fn list_callbacks(&self, tenant_id: &str, filter: &CallbackFilter) -> StoreResult<Vec<CallbackRecord>> {
        self.timed(async {
            let (clause, mut params) = filter_clause(tenant_id, filter);
            let mut sql = format!("SELECT {COLUMNS} FROM callbacks WHERE {clause}");
            if let Some((after_ms, after_id)) = &filter.after {
                let ms = push_param(&mut params, Param::Int(after_ms.as_ms()));
                let id = push_param(&mut params, Param::Text(after_id.clone()));
                sql.push_str(&format!(" AND (desired_ms > {ms} OR (desired_ms = {ms} AND id > {id}))"));
            }
            let limit = push_param(&mut params, Param::Int(filter.limit));
            sql.push_str(&format!(" ORDER BY desired_ms, id LIMIT {limit}"));
            let rows = bind_params(sqlx::query(&sql), params).fetch_all(&self.reader).await?;
            rows.iter().map(from_row).collect()
        })
        .await
    }

    /// How many callbacks match `filter` (its cursor and limit aside), per state.
    pub async fn count_callbacks(&self, tenant_id: &str, filter: &CallbackFilter) -> StoreResult<Vec<(String, i64)>> {
        self.timed(async {
            let (clause, params) = filter_clause(tenant_id, filter);
            let sql = format!("SELECT state, COUNT(*) AS n FROM callbacks WHERE {clause} GROUP BY state");
            let rows = bind_params(sqlx::query(&sql), params).fetch_all(&self.reader).await?;
            rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
        })
        .await
    }
}

/// Append a bind parameter; returns its placeholder.
fn push_param(params: &mut Vec<Param>, p: Param) -> String {
    params.push(p);
    format!("${}", params.len())
}

/// The list's filters (tenant, service, number, states, desired-time range) as a WHERE clause.
fn filter_clause(tenant_id: &str, filter: &CallbackFilter) -> (String, Vec<Param>) {
    let mut clause = "tenant_id = $1".to_string();
    let mut params = vec![Param::Text(tenant_id.to_string())];
    if let Some(service) = &filter.service_name {
        let mark = push_param(&mut params, Param::Text(service.clone()));
        clause.push_str(&format!(" AND service_name = {mark}"));
    }
    if let Some(phone) = &filter.phone {
        let mark = push_param(&mut params, Param::Text(phone.clone()));
        clause.push_str(&format!(" AND phone = {mark}"));
    }
    if let Some(digits) = &filter.phone_suffix {
        let mark = push_param(&mut params, Param::Text(format!("%{digits}")));
        clause.push_str(&format!(" AND phone LIKE {mark}"));
    }
    if !filter.states.is_empty() {
        let marks: Vec<String> =
            filter.states.iter().map(|s| push_param(&mut params, Param::Text(s.as_str().to_string()))).collect();
        clause.push_str(&format!(" AND state IN ({})", marks.join(", ")));
    }
    if let Some(from) = filter.from_ms {
        let mark = push_param(&mut params, Param::Int(from.as_ms()));
        clause.push_str(&format!(" AND desired_ms >= {mark}"));
    }
    if let Some(to) = filter.to_ms {
        let mark = push_param(&mut params, Param::Int(to.as_ms()));
        clause.push_str(&format!(" AND desired_ms <= {mark}"));
    }
    (clause, params)
}

fn bind_params<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    params: Vec<Param>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for p in params {
        query = match p {
            Param::Text(t) => query.bind(t),
            Param::Int(i) => query.bind(i),
        };
    }
    query
}
