//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds
//! `migrations/postgres` at compile time, and cargo does not track that directory itself.

fn main() {
    println!("cargo:rerun-if-changed=../migrations/postgres");
}
