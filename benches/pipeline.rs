//! Pipeline throughput and delivery latency benchmark (filled in below).

fn main() {}
