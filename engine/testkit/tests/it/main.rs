//! Integration tests of the test kit against a real PostgreSQL (`DATABASE_URL` or the
//! throwaway cluster).

mod test_db;
