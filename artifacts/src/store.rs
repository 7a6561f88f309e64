//! The content-addressed artifact store and the cache entries that map a
//! step's cache key to the artifacts it produced.
