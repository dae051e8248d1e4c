//! Makes test and benchmark fixtures: `berth-fixture busybox OUT.tar`,
//! `berth-fixture big-archive OUT.tar [LAYERS] [MIB_PER_LAYER] [TAG]`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: berth-fixture busybox OUT.tar | big-archive OUT.tar [LAYERS] [MIB] [TAG]";
    let res = match args.first().map(String::as_str) {
        Some("busybox") if args.len() == 2 => {
            berth_testkit::make_busybox_tar(std::path::Path::new(&args[1]))
        }
        Some("big-archive") if args.len() >= 2 => {
            let layers = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
            let mb = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(40);
            let tag = args.get(4).map(String::as_str).unwrap_or("big:1");
            berth_testkit::archive::write_big_archive(
                std::path::Path::new(&args[1]),
                tag,
                layers,
                mb,
            )
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if let Err(e) = res {
        eprintln!("berth-fixture: {e}");
        std::process::exit(1);
    }
}
