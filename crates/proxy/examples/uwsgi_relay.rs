//! A uwsgi relay for trying the upstream client by hand: listens for uwsgi
//! on 127.0.0.1:PORT and forwards every request to one uwsgi peer, e.g.
//! nginx (`uwsgi_pass 127.0.0.1:PORT`) -> this -> uWSGI.
//!
//! `cargo run -p portico-proxy --example uwsgi_relay -- 9001 127.0.0.1:9000`
//! (or `unix:/path/to/app.sock` as the target).

use std::path::PathBuf;
use std::sync::Arc;

use portico_config::site::UpstreamTarget;
use portico_proxy::{UwsgiSettings, UwsgiUpstream};
use portico_server::{ListenerSpec, ServeOptions, Wire, bind_tcp, serve};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, target] = args.as_slice() else {
        return Err("usage: uwsgi_relay LISTEN_PORT HOST:PORT|unix:/path".into());
    };
    let target = match target.strip_prefix("unix:") {
        Some(path) => UpstreamTarget::Unix(PathBuf::from(path)),
        None => {
            let (host, port) = target.rsplit_once(':').ok_or("target needs a port")?;
            UpstreamTarget::Tcp {
                host: host.to_string(),
                port: port.parse()?,
            }
        }
    };
    let upstream = UwsgiUpstream::new(target, UwsgiSettings::default())?;
    let spec = ListenerSpec {
        wire: Wire::Uwsgi,
        spec: "uwsgi_relay",
        backlog: 128,
        buffer_size: 65535,
        http2: None,
    };
    let bound = bind_tcp("127.0.0.1", port.parse()?, &spec)?;
    serve(
        vec![bound],
        Arc::new(upstream),
        ServeOptions::default(),
        || {
            eprintln!("relaying uwsgi on 127.0.0.1:{port}");
        },
    )?;
    Ok(())
}
