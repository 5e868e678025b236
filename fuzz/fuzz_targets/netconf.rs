//! Fuzz target: arbitrary bytes as a network config on stdin. `parse`, `validate` and the mapping
//! to a CNI error must never panic, whatever the input; run with `cargo fuzz run netconf`.
#![no_main]

use userspace_cni_api::{CniError, NodeSettings};
use libfuzzer_sys::fuzz_target;
use userspace_cni::netconf;

fuzz_target!(|data: &[u8]| {
    let settings = NodeSettings::default();
    let outcome = netconf::parse(data).and_then(|nc| {
        nc.validate(&settings)?;
        // The record re-reads the stored document: it must round-trip.
        let again = netconf::from_value(nc.raw.clone())?;
        assert_eq!(again, nc, "the normalised document must parse to the same config");
        Ok(())
    });
    if let Err(e) = outcome {
        // Rendering the error is part of the path to stdout; it must not panic either.
        let e = CniError::from(e);
        assert!(!e.msg.is_empty());
        assert!([2, 6, 7].contains(&e.code), "unexpected code {} for {}", e.code, e.msg);
    }
});
