//! swagger
