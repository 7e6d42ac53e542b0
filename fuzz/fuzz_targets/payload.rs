//! Fuzz target: any bytes, in any body format or under any content type, through the webhook payload parser.
#![no_main]

use std::sync::OnceLock;

use calltrail::webhook::payload::{self, BodyFormat, Delivery};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = match selector % 4 {
        0 => BodyFormat::Json,
        1 => BodyFormat::Form,
        2 => BodyFormat::Multipart {
            boundary: "XyZ".into(),
        },
        // The first line is a Content-Type header, the rest the body.
        _ => {
            let split = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
            let content_type = std::str::from_utf8(&body[..split]).ok();
            let rest = body.get(split + 1..).unwrap_or_default();
            match BodyFormat::from_content_type(content_type, rest) {
                Ok(format) => {
                    let _ = runtime().block_on(payload::parse(&format, rest));
                }
                Err(_) => {}
            }
            return;
        }
    };
    if let Ok(Delivery::Call(event)) = runtime().block_on(payload::parse(&format, body)) {
        // What the parser accepts is what the store relies on.
        assert!(!event.call_id.is_empty());
        assert!(event.fields.duration_seconds.is_none_or(|d| d >= 0));
        if event.is_terminal() {
            assert!(event.fields.ended_at.is_some());
        }
    }
});
