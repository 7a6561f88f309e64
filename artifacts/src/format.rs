//! On-disk formats: tables as Arrow IPC files, models and JSON values as
//! self-describing files, each carrying its content hash, producer and
//! format version in its metadata.
