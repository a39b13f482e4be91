#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| legate_fuzz::ads::run(data));
