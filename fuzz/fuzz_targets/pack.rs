//! A packed agent's configuration, read from the program's last bytes:
//! any bytes give a configuration or a typed error, and what was packed
//! reads back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifebuoy::pack::{parse, PackedConfig, CONFIG_MAX, MAGIC};

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    tail: Vec<u8>,
    program: Vec<u8>,
    company: String,
    rendezvous: String,
    pin: String,
    tunnel_port: u16,
    lang: Option<String>,
    clipboard_to_technician: bool,
}

fuzz_target!(|input: Input| {
    let _ = parse(&input.tail);
    let config = PackedConfig {
        company: input.company,
        rendezvous: input.rendezvous,
        pin: input.pin,
        tunnel_port: input.tunnel_port,
        lang: input.lang,
        clipboard_to_technician: input.clipboard_to_technician,
    };
    let json = serde_json::to_vec(&config).unwrap();
    if json.len() > CONFIG_MAX {
        return;
    }
    let mut file = input.program;
    file.extend_from_slice(&json);
    file.extend_from_slice(&(json.len() as u32).to_le_bytes());
    file.extend_from_slice(blake3::hash(&json).as_bytes());
    file.extend_from_slice(MAGIC);
    let tail = &file[file.len().saturating_sub(CONFIG_MAX + 52)..];
    assert_eq!(parse(tail).unwrap(), Some(config));
});
