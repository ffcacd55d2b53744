//! Fuzz the uwsgi packet parser with any limit: it must never panic, and a
//! parsed packet's vars must fit in the block it announced.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portico_proto::uwsgi::parse_packet;

fuzz_target!(|data: &[u8]| {
    let Some((&limit_byte, rest)) = data.split_first() else {
        return;
    };
    let limit = usize::from(limit_byte) * 256;
    let mut buf = BytesMut::from(rest);
    if let Ok(Some(packet)) = parse_packet(&mut buf, limit) {
        let size: usize = packet.vars().map(|(k, v)| 4 + k.len() + v.len()).sum();
        assert_eq!(size, packet.datasize);
        assert_eq!(packet.vars().count(), packet.var_count());
        assert!(packet.datasize <= limit);
    }
});
