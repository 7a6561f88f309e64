fn main() {
    flowrun_build::write_fingerprints();
}
