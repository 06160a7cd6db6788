//! Any bytes through every manifest reader: YAML with budgets, then the service
//! manifest, foundation manifest, Pulumi project and stack file readers, and
//! diagnostic rendering. None may panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pantstack_manifest::{Limits, Reader, pulumi, yaml};
use pantstack_model::{foundation, service, settings::Layer, values};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let node = match yaml::parse("fuzz.yaml", text, Limits::default()) {
        Ok(n) => n,
        Err(d) => {
            let _ = d.render(Some(text), false);
            return;
        }
    };
    let mut r = Reader::new("fuzz.yaml");
    let _ = service::read_service(&mut r, "api", &node);
    let _ = foundation::read_foundation(&mut r, &node, None);
    let _ = pulumi::read_project(&mut r, &node);
    let stack = pulumi::read_stack(&mut r, "test", &node);
    values::stack_layer(&mut r, &stack, false, &mut Layer::default());
    values::stack_layer(&mut r, &stack, true, &mut Layer::default());
    for d in &r.diags {
        let _ = d.render(Some(text), true);
    }
});
