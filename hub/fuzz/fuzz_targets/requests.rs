//! Any bytes, as a request of one of the hub's calls: decoded and validated as the services do
//! it, then rendered where the hub renders (consent receipts). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relais_hub::api::fuzzing::check_request(data);
});
