//! The two migration folders (`migrations/postgres`, `migrations/sqlite`) must describe one
//! schema: both are applied to empty databases and their tables, columns, nullability and
//! indexes (with their columns) are compared.

use std::collections::BTreeMap;

use sqlx::{Connection, Row};

use crate::helpers::{fresh_database, Backend};

/// table → (columns: name → nullable, indexes: name → columns in order)
type Schema = BTreeMap<String, (BTreeMap<String, bool>, BTreeMap<String, Vec<String>>)>;

async fn migrated(backend: Backend, dir: &tempfile::TempDir) -> sqlx::AnyConnection {
    let url = fresh_database(backend, dir).await;
    let settings = crate::helpers::test_settings(&url, &[]);
    let store = ringback::store::Store::connect(&settings.database).await.expect("migrations apply");
    store.close().await;
    sqlx::AnyConnection::connect(&url).await.unwrap()
}

async fn postgres_schema(conn: &mut sqlx::AnyConnection) -> Schema {
    let mut schema = Schema::new();
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, (is_nullable = 'YES') AS nullable
         FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for r in columns {
        let nullable: bool = r.get("nullable");
        schema.entry(r.get("t")).or_default().0.insert(r.get("c"), nullable);
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text AS t, i.relname::text AS i,
                string_agg(a.attname::text, ',' ORDER BY k.n) AS cols
         FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace ns ON ns.oid = t.relnamespace AND ns.nspname = 'public'
         CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
         WHERE NOT x.indisprimary AND NOT x.indisunique
         GROUP BY t.relname, i.relname",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for r in indexes {
        let cols: String = r.get("cols");
        schema.entry(r.get("t")).or_default().1.insert(r.get("i"), cols.split(',').map(str::to_string).collect());
    }
    schema
}

async fn sqlite_schema(conn: &mut sqlx::AnyConnection) -> Schema {
    let mut schema = Schema::new();
    let tables: Vec<String> =
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("name"))
            .collect();
    for table in tables {
        let entry = schema.entry(table.clone()).or_default();
        for r in sqlx::query(&format!("SELECT name, \"notnull\" AS nn, pk FROM pragma_table_info('{table}')"))
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        {
            // A primary key column is never null, whatever its declaration says.
            let not_null = r.get::<i64, _>("nn") != 0 || r.get::<i64, _>("pk") != 0;
            entry.0.insert(r.get("name"), !not_null);
        }
        let indexes: Vec<String> = sqlx::query(&format!(
            "SELECT name FROM pragma_index_list('{table}') WHERE origin = 'c' AND \"unique\" = 0"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("name"))
        .collect();
        for index in indexes {
            let cols = sqlx::query(&format!("SELECT name FROM pragma_index_info('{index}') ORDER BY seqno"))
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .collect();
            schema.get_mut(&table).unwrap().1.insert(index, cols);
        }
    }
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migration_folders_build_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut pg = migrated(Backend::Postgres, &dir).await;
    let mut lite = migrated(Backend::Sqlite, &dir).await;
    let (mut pg, mut lite) = (postgres_schema(&mut pg).await, sqlite_schema(&mut lite).await);
    for schema in [&mut pg, &mut lite] {
        schema.remove("_sqlx_migrations");
    }
    assert!(pg.len() > 10, "the schema was read: {:?}", pg.keys());
    let tables = |s: &Schema| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(tables(&pg), tables(&lite), "the same tables");
    for (table, (pg_columns, pg_indexes)) in &pg {
        let (lite_columns, lite_indexes) = &lite[table];
        assert_eq!(pg_columns, lite_columns, "{table}: columns and their nullability (PostgreSQL, SQLite)");
        assert_eq!(pg_indexes, lite_indexes, "{table}: indexes and their columns (PostgreSQL, SQLite)");
    }
}
