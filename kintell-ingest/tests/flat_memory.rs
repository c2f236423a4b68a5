//! Memory stays flat: the peak heap of importing 200,000 session rows is about that of importing 20,000.
//!
//! This is its own test binary (not a module of `it`) because it installs a counting global allocator, which sees
//! every allocation of the process: with other tests running beside it the figures would mean nothing.

#![cfg(feature = "sqlite")]
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kintell_ingest::domain::EntityKind;
use kintell_ingest::ingest::{ImportRequest, Ingestor};
use kintell_ingest::store::Store;
use kintell_ingest::synthetic::{SessionsSpec, write_sessions};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System::alloc` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak of live heap bytes above the level before the import, for an import of `rows` generated sessions
/// into a new SQLite file (SQLite's own page cache is allocated by SQLite, not through this allocator).
fn import_peak(rows: u64) -> usize {
    let dir = tempfile::tempdir().expect("temporary directory");
    let csv = dir.path().join(format!("sessions-{rows}.csv"));
    let file = std::fs::File::create(&csv).expect("create the CSV");
    write_sessions(SessionsSpec::new(rows), std::io::BufWriter::new(file)).expect("write the CSV");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("flat.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let report = Ingestor::new(store.clone())
            .import(
                ImportRequest::from_path(&csv)
                    .entity(EntityKind::KintellSessions)
                    .create_missing_users(true),
            )
            .await
            .expect("import");
        assert_eq!(report.batch.total_rows, rows as i64);
        assert_eq!(report.inserted, rows, "every generated row is stored");
        PEAK.load(Ordering::Relaxed) - base
    })
}

#[test]
fn peak_heap_of_an_import_does_not_grow_with_the_file() {
    let small = import_peak(20_000);
    let large = import_peak(200_000);
    println!("peak heap above baseline: 20k rows {small} bytes, 200k rows {large} bytes");
    // Ten times the rows may cost a little more (a longer error summary, larger counters), never ten times.
    assert!(
        large <= small + small / 2 + (1 << 20),
        "the peak grew with the file: {small} bytes for 20k rows, {large} bytes for 200k rows"
    );
}
