//! System statistics (placeholder; being written).
