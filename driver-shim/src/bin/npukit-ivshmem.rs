//! `npukit-ivshmem`: the NPU behind QEMU's ivshmem-doorbell device.
//!
//! ```text
//! npukit-ivshmem --socket PATH [--mem-mb N] [--vectors N]
//! qemu-system-x86_64 ... -chardev socket,path=PATH,id=npu \
//!     -device ivshmem-doorbell,chardev=npu,vectors=1
//! ```
//!
//! Serves one QEMU connection (the ivshmem-server protocol, see
//! `npukit_shim::ivshmem`) and exits when QEMU disconnects. The device is
//! chosen as for the shim: `NPUKIT_BACKEND` (model, rtl, lockstep),
//! `NPUKIT_CONFIG`, `NPUKIT_RTL_VARIANT`. `docs/kernel.md` is the guide.

use std::os::unix::net::UnixListener;
use std::process::ExitCode;

use npukit_shim::backend::{config_from_env, rtl_variant_from_env, Backend};
use npukit_shim::ivshmem::Server;

const USAGE: &str = "usage: npukit-ivshmem --socket PATH [--mem-mb N] [--vectors N]";

struct Args {
    socket: String,
    mem_mb: usize,
    vectors: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut socket = None;
    let mut mem_mb = 64usize;
    let mut vectors = 1u32;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--socket" => socket = Some(value("--socket")?),
            "--mem-mb" => {
                let v = value("--mem-mb")?;
                mem_mb = v
                    .parse()
                    .ok()
                    .filter(|m: &usize| m.is_power_of_two())
                    .ok_or(format!("--mem-mb {v:?}: a power of two (MiB) is needed"))?;
            }
            "--vectors" => {
                let v = value("--vectors")?;
                vectors = v
                    .parse()
                    .ok()
                    .filter(|&n| (1..=64).contains(&n))
                    .ok_or(format!("--vectors {v:?}: 1 to 64"))?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        socket: socket.ok_or(format!("--socket is required\n{USAGE}"))?,
        mem_mb,
        vectors,
    })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let backend = Backend::from_env().map_err(|e| e.to_string())?;
    let variant = rtl_variant_from_env();
    let cfg = config_from_env().map_err(|e| e.to_string())?;
    let cfg = backend
        .resolve_config(&cfg, variant.as_deref())
        .map_err(|e| e.to_string())?;
    let dev = backend
        .open_traced(&cfg, variant.as_deref(), None)
        .map_err(|e| e.to_string())?;
    let mut server = Server::new(dev, backend.platform(), args.mem_mb << 20, args.vectors)
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&args.socket);
    let listener =
        UnixListener::bind(&args.socket).map_err(|e| format!("bind {}: {e}", args.socket))?;
    eprintln!(
        "npukit-ivshmem: {} backend, {} MiB card memory, {} vector(s), listening on {}",
        backend.name(),
        args.mem_mb,
        args.vectors,
        args.socket
    );
    let stats = server.serve(&listener).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&args.socket);
    let stats = stats?;
    eprintln!(
        "npukit-ivshmem: client gone after {} mailbox requests, {} interrupts, {} device cycles",
        stats.requests, stats.irqs, stats.cycles
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("npukit-ivshmem: {e}");
            ExitCode::from(2)
        }
    }
}
