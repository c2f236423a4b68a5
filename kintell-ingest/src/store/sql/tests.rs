//! Statement counts: a backend wrapper records every statement the store runs, so a test can show that an upsert
//! of thousands of rows is one statement per kind, split only by the bind-parameter limit.

use super::*;
use crate::domain::{CompanyId, Name, Tags, UserId, UserRole};
use std::cell::RefCell;
use std::marker::PhantomData;

thread_local! {
    /// Statements run on this thread (tests run on a current-thread runtime, so the store's awaits do too).
    static STATEMENTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// `B` with every statement recorded as its verb and table, e.g. `INSERT users`, `SELECT users`.
struct Counting<B>(PhantomData<B>);

fn record(sql: &str) {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let table = words
        .iter()
        .skip_while(|w| !matches!(**w, "INTO" | "FROM"))
        .nth(1)
        .unwrap_or(&"?")
        .trim_matches('"');
    let verb = words.first().copied().unwrap_or("?");
    STATEMENTS.with(|s| s.borrow_mut().push(format!("{verb} {table}")));
}

fn take_statements() -> Vec<String> {
    STATEMENTS.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

#[async_trait]
impl<B: Backend> Backend for Counting<B> {
    type Pool = B::Pool;
    type Conn = B::Conn;
    type Tx = B::Tx;
    type Pooled = B::Pooled;
    type Row = B::Row;
    type Builder = B::Builder;

    const MAX_BINDS: usize = B::MAX_BINDS;

    fn timestamp(t: Option<DateTime<Utc>>) -> Value {
        B::timestamp(t)
    }

    fn json(v: Option<&serde_json::Value>) -> Value {
        B::json(v)
    }

    fn analyze(tables: &[&str]) -> Option<String> {
        B::analyze(tables)
    }

    fn now() -> Expr {
        B::now()
    }

    fn inserted_marker() -> Option<Expr> {
        B::inserted_marker()
    }

    const WRITES_IN_CTE: bool = B::WRITES_IN_CTE;

    const ROWS_AS_JSON: bool = B::ROWS_AS_JSON;

    fn exclusive_lock(key: i64) -> Option<SelectStatement> {
        B::exclusive_lock(key)
    }

    fn constraint(err: &dyn sqlx::error::DatabaseError) -> Option<String> {
        B::constraint(err)
    }

    async fn begin(pool: &Self::Pool) -> Result<Self::Tx, sqlx::Error> {
        B::begin(pool).await
    }

    async fn begin_read(pool: &Self::Pool) -> Result<Self::Tx, sqlx::Error> {
        B::begin_read(pool).await
    }

    async fn acquire(pool: &Self::Pool) -> Result<Self::Pooled, sqlx::Error> {
        B::acquire(pool).await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        B::commit(tx).await
    }

    async fn rollback(tx: Self::Tx) -> Result<(), sqlx::Error> {
        B::rollback(tx).await
    }

    async fn fetch(
        conn: &mut Self::Conn,
        sql: String,
        values: Values,
    ) -> Result<Vec<Self::Row>, sqlx::Error> {
        record(&sql);
        B::fetch(conn, sql, values).await
    }

    async fn execute(
        conn: &mut Self::Conn,
        sql: String,
        values: Values,
    ) -> Result<u64, sqlx::Error> {
        record(&sql);
        B::execute(conn, sql, values).await
    }
}

fn users(n: usize, company: CompanyId) -> Vec<User> {
    (0..n)
        .map(|i| {
            let email = Email::parse(&format!("volunteer{i}@example.org")).expect("valid email");
            User {
                id: UserId::stable(&email),
                email,
                role: UserRole::Volunteer,
                first_name: None,
                last_name: None,
                company_id: Some(company),
                tags: Tags::from_raw(["tech"]),
                journey_flags: serde_json::Map::new(),
            }
        })
        .collect()
}

/// The statements an upsert of `rows` rows of `columns` columns into `table` should run: one per chunk the bind
/// limit allows, each preceded by a count of existing keys where the backend has no inserted marker.
fn expected_upsert<B: Backend>(table: &str, rows: usize, columns: usize) -> Vec<String> {
    let per_statement = rows_per_statement::<B>(columns);
    let chunks = rows.div_ceil(per_statement);
    let mut expected = Vec::new();
    for _ in 0..chunks {
        if B::inserted_marker().is_none() {
            expected.push(format!("SELECT {table}"));
        }
        expected.push(format!("INSERT {table}"));
    }
    expected
}

async fn upserts_are_one_statement_per_chunk<B: Backend>(pool: B::Pool) {
    let store = SqlStore::<Counting<B>>::new(pool);
    let company = Company {
        id: CompanyId::stable("acme"),
        slug: Key::parse("acme").expect("valid key"),
        name: Name::parse("Acme").expect("valid name"),
    };
    let mut people = users(5_000, company.id);

    let mut unit = store.begin_unit().await.expect("begin");
    unit.upsert_companies(std::slice::from_ref(&company))
        .await
        .expect("company");
    take_statements();
    let counts = unit.upsert_users(&people).await.expect("users");
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 5_000,
            updated: 0,
            unchanged: 0
        }
    );
    assert_eq!(take_statements(), expected_upsert::<B>("users", 5_000, 8));
    unit.commit().await.expect("commit");

    for person in people.iter_mut().step_by(50) {
        person.tags = Tags::from_raw(["tech", "mentor"]);
    }
    let mut unit = store.begin_unit().await.expect("begin");
    let emails: Vec<Email> = people.iter().map(|u| u.email.clone()).collect();
    assert_eq!(
        unit.users_by_email(&emails).await.expect("lookup").len(),
        5_000
    );
    assert_eq!(take_statements(), ["SELECT users"]);
    let counts = unit.upsert_users(&people).await.expect("users");
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 0,
            updated: 100,
            unchanged: 4_900
        }
    );
    assert_eq!(take_statements(), expected_upsert::<B>("users", 5_000, 8));
    unit.rollback().await.expect("rollback");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_upserts_are_one_statement_per_chunk() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = crate::store::Database::connect(&url)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    let pool = db.as_sqlite().expect("a SQLite database").clone();
    upserts_are_one_statement_per_chunk::<super::sqlite::SqliteBackend>(pool).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_upserts_are_one_statement_per_chunk() {
    let Ok(admin) = std::env::var("KINTELL_TEST_DATABASE_URL") else {
        println!(
            "skipped: postgres_upserts_are_one_statement_per_chunk needs KINTELL_TEST_DATABASE_URL"
        );
        return;
    };
    use sqlx::Connection;
    let name = format!("kintell_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => admin.clone(),
    };
    let db = crate::store::Database::connect(&url)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    let pool = db.as_postgres().expect("a PostgreSQL database").clone();
    upserts_are_one_statement_per_chunk::<super::postgres::PostgresBackend>(pool).await;
    db.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .expect("drop database");
}
