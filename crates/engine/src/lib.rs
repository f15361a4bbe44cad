//! The part of lull that talks to PostgreSQL.
