//! Library behind `weftctl`.
