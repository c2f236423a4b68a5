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
    // The first table named after INTO, FROM or JOIN (a key list's subquery or function is no table).
    let table = words
        .windows(2)
        .find(|w| matches!(w[0], "INTO" | "FROM" | "JOIN") && w[1].starts_with('"'))
        .map_or("?", |w| w[1].trim_matches('"'));
    let verb = words.first().copied().unwrap_or("?");
    let table = if verb == "COPY" {
        words.get(1).map_or("?", |w| w.trim_matches('"'))
    } else {
        table
    };
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

    fn json_text(text: String) -> Value {
        B::json_text(text)
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

    const COPY_NEW_ROWS: bool = B::COPY_NEW_ROWS;

    async fn copy_in(
        conn: &mut Self::Conn,
        statement: String,
        data: Vec<u8>,
    ) -> Result<u64, sqlx::Error> {
        record(&statement);
        B::copy_in(conn, statement, data).await
    }

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
/// limit allows, each preceded by a count of existing keys where the backend has no inserted marker. Where the
/// backend copies new rows, each chunk is a look-up of its keys, then a COPY under a savepoint when they are all
/// new (`existing` false), or the upsert statement when they all exist.
fn expected_upsert<B: Backend>(
    table: &str,
    rows: usize,
    columns: usize,
    existing: bool,
) -> Vec<String> {
    let per_statement = rows_per_statement::<B>(columns);
    let chunks = rows.div_ceil(per_statement);
    let mut expected = Vec::new();
    for _ in 0..chunks {
        if B::COPY_NEW_ROWS {
            expected.push(format!("SELECT {table}"));
            if existing {
                expected.push(format!("INSERT {table}"));
            } else {
                expected.extend([
                    "SAVEPOINT ?".to_owned(),
                    format!("COPY {table}"),
                    "RELEASE ?".to_owned(),
                ]);
            }
            continue;
        }
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
    assert_eq!(
        take_statements(),
        expected_upsert::<B>("users", 5_000, 8, false)
    );
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
    assert_eq!(
        take_statements(),
        expected_upsert::<B>("users", 5_000, 8, true)
    );
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

/// A database of its own on the server `KINTELL_TEST_DATABASE_URL` names, migrated; `None` (the test skipped)
/// without the variable.
#[cfg(feature = "postgres")]
struct Scratch {
    admin: sqlx::PgConnection,
    name: String,
    db: crate::store::Database,
}

#[cfg(feature = "postgres")]
impl Scratch {
    async fn new(test: &str) -> Option<Scratch> {
        use sqlx::Connection;
        let Ok(admin_url) = std::env::var("KINTELL_TEST_DATABASE_URL") else {
            println!("skipped: {test} needs KINTELL_TEST_DATABASE_URL");
            return None;
        };
        let name = format!("kintell_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => admin_url.clone(),
        };
        let db = crate::store::Database::connect(&url)
            .await
            .expect("connect");
        db.migrate().await.expect("migrate");
        Some(Scratch { admin, name, db })
    }

    fn pool(&self) -> sqlx::PgPool {
        self.db
            .as_postgres()
            .expect("a PostgreSQL database")
            .clone()
    }

    async fn drop(mut self) {
        self.db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .expect("drop database");
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_upserts_are_one_statement_per_chunk() {
    let Some(scratch) = Scratch::new("postgres_upserts_are_one_statement_per_chunk").await else {
        return;
    };
    upserts_are_one_statement_per_chunk::<super::postgres::PostgresBackend>(scratch.pool()).await;
    scratch.drop().await;
}

/// New rows are copied after a look-up of their keys; a row another transaction stores under one of those keys
/// after the look-up makes the COPY fail on the unique index, and the write then goes through the upsert statement,
/// which waits for that transaction and updates its row, exactly as it did without the COPY.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_a_key_stored_by_another_transaction_after_the_look_up_is_updated() {
    let Some(scratch) =
        Scratch::new("postgres_a_key_stored_by_another_transaction_after_the_look_up_is_updated")
            .await
    else {
        return;
    };
    let pool = scratch.pool();
    let store = SqlStore::<Counting<super::postgres::PostgresBackend>>::new(pool.clone());
    let company = Company {
        id: CompanyId::stable("acme"),
        slug: Key::parse("acme").expect("valid key"),
        name: Name::parse("Acme").expect("valid name"),
    };
    let mut unit = store.begin_unit().await.expect("begin");
    unit.upsert_companies(std::slice::from_ref(&company))
        .await
        .expect("company");
    unit.commit().await.expect("commit");

    let mut person = users(1, company.id);
    let mut first = store.begin_unit().await.expect("begin");
    let counts = first.upsert_users(&person).await.expect("first write");
    assert_eq!(counts.inserted, 1);
    person[0].tags = Tags::from_raw(["tech", "mentor"]);
    let mut second = store.begin_unit().await.expect("begin");
    // The second write's look-up cannot see the first's uncommitted row, so it copies; the COPY waits on the
    // unique index for the first transaction, which commits once the server shows that wait.
    let first_commits = async {
        let mut watcher = pool.acquire().await.expect("connection");
        let mut polls = 0_u32;
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut *watcher)
            .await
            .expect("pg_stat_activity");
            if waiting > 0 {
                break;
            }
            polls += 1;
            assert!(
                polls < 100_000,
                "the second write never waited for the first"
            );
            tokio::task::yield_now().await;
        }
        first.commit().await.expect("commit the first write");
    };
    take_statements();
    let (counts, ()) = tokio::join!(second.upsert_users(&person), first_commits);
    assert_eq!(
        take_statements(),
        [
            "SELECT users",
            "SAVEPOINT ?",
            "COPY users",
            "ROLLBACK ?",
            "RELEASE ?",
            "INSERT users"
        ]
    );
    assert_eq!(
        counts.expect("the second write"),
        UpsertCounts {
            inserted: 0,
            updated: 1,
            unchanged: 0
        }
    );
    second.commit().await.expect("commit the second write");

    let mut unit = store.begin_unit().await.expect("begin");
    let stored = unit
        .users_by_email(std::slice::from_ref(&person[0].email))
        .await
        .expect("look-up");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tags, person[0].tags);
    unit.rollback().await.expect("rollback");
    drop(store);
    scratch.drop().await;
}
