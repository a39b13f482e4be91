#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| legate_fuzz::loader::run(data));
