//! Volumes and file sharing through the docker CLI and berth: bind mounts, named and anonymous
//! volumes, copy-up, --volumes-from, rm -v, volume ls/inspect/rm/prune, tmpfs, backups.

use berth_testkit::Daemon;

use crate::util::Client;

fn with_busybox() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox");
    d
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    let d = with_busybox();
    let c = Client::Docker;
    let host = d.dir.path().join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello\n").unwrap();
    let spec = format!("{}:/data", host.display());
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            &spec,
            "busybox",
            "sh",
            "-c",
            "cat /data/from-host; echo written > /data/from-ctr",
        ],
    );
    assert_eq!(o.ok(), "hello\n");
    assert_eq!(
        std::fs::read_to_string(host.join("from-ctr")).unwrap(),
        "written\n"
    );
    let ro = format!("{}:/data:ro", host.display());
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            &ro,
            "busybox",
            "sh",
            "-c",
            "echo x > /data/nope",
        ],
    );
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("Read-only file system"), "{}", o.stderr);
    // -v creates a missing host directory; --mount refuses it.
    let missing = d.dir.path().join("made-by-v");
    let spec = format!("{}:/m", missing.display());
    c.run(&d, &["run", "--rm", "-v", &spec, "busybox", "true"])
        .ok();
    assert!(missing.is_dir());
    let gone = d.dir.path().join("not-there");
    let m = format!("type=bind,source={},target=/m", gone.display());
    let e = c.run(&d, &["run", "--rm", "--mount", &m, "busybox", "true"]);
    assert!(
        e.err().contains("bind source path does not exist"),
        "{}",
        e.stderr
    );
    let e = c.run(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=bind,source=relative,target=/m",
            "busybox",
            "true",
        ],
    );
    assert!(e.err().contains("must be absolute"), "{}", e.stderr);
    let inspect = c.run(
        &d,
        &[
            "run", "-d", "--name", "bnd", "-v", &spec, "busybox", "sleep", "60",
        ],
    );
    inspect.ok();
    let m = c.run(
        &d,
        &[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}} {{.Source}} {{.Destination}} {{.RW}}{{end}}",
            "bnd",
        ],
    );
    assert_eq!(m.ok().trim(), format!("bind {} /m true", missing.display()));
    c.run(&d, &["rm", "-f", "bnd"]).ok();
}

fn named_volume_flow(c: Client) {
    let d = with_busybox();
    c.run(&d, &["volume", "create", "--label", "team=x", "keep"])
        .ok();
    c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "busybox",
            "sh",
            "-c",
            "echo persisted > /data/f",
        ],
    )
    .ok();
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "keep:/other",
            "busybox",
            "cat",
            "/other/f",
        ],
    );
    assert_eq!(o.ok(), "persisted\n");
    let insp = c.run(&d, &["volume", "inspect", "keep"]);
    let v: serde_json::Value = serde_json::from_str(insp.ok()).unwrap();
    assert_eq!(v[0]["Name"], "keep");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Scope"], "local");
    assert_eq!(v[0]["Labels"]["team"], "x");
    let mp = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{mp}/f")).unwrap(),
        "persisted\n"
    );
    let ls = c.run(&d, &["volume", "ls"]);
    assert!(
        ls.ok().starts_with("DRIVER    VOLUME NAME"),
        "{}",
        ls.stdout
    );
    assert!(ls.stdout.contains("local     keep"), "{}", ls.stdout);
    assert_eq!(
        c.run(&d, &["volume", "ls", "-q", "--filter", "label=team=x"])
            .ok()
            .trim(),
        "keep"
    );
    // In use: refused.
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "user",
            "-v",
            "keep:/data",
            "busybox",
            "sleep",
            "60",
        ],
    )
    .ok();
    let e = c.run(&d, &["volume", "rm", "keep"]);
    assert!(e.err().contains("volume is in use"), "{}", e.stderr);
    assert_eq!(
        c.run(&d, &["volume", "ls", "-q", "--filter", "dangling=false"])
            .ok()
            .trim(),
        "keep"
    );
    c.run(&d, &["rm", "-f", "-v", "user"]).ok();
    // rm -v never removes a named volume.
    assert_eq!(c.run(&d, &["volume", "ls", "-q"]).ok().trim(), "keep");
    c.run(&d, &["volume", "rm", "keep"]).ok();
    assert!(c.run(&d, &["volume", "ls", "-q"]).ok().trim().is_empty());
    let e = c.run(&d, &["volume", "create", "bad/name"]);
    assert!(
        e.err()
            .contains("includes invalid characters for a local volume name"),
        "{}",
        e.stderr
    );
    let e = c.run(&d, &["run", "--rm", "-v", "a/b:/x", "busybox", "true"]);
    assert!(
        e.err().contains("includes invalid characters"),
        "{}",
        e.stderr
    );
    assert!(
        c.run(&d, &["volume", "ls", "-q"]).ok().trim().is_empty(),
        "nothing half-created"
    );
}

#[test]
fn named_volumes_through_docker() {
    named_volume_flow(Client::Docker);
}

#[test]
fn named_volumes_through_berth() {
    named_volume_flow(Client::Berth);
}

#[test]
fn anonymous_volumes_copy_up_volumes_from_and_prune() {
    let d = with_busybox();
    let c = Client::Docker;
    // An image with content under a VOLUME path, owned by uid 1000.
    c.run(
        &d,
        &[
            "run",
            "--name",
            "maker",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /srv/data && echo packed > /srv/data/file && chown -R 1000:1000 /srv/data",
        ],
    )
    .ok();
    c.run(
        &d,
        &["commit", "-c", "VOLUME /srv/data", "maker", "packed:1"],
    )
    .ok();
    c.run(&d, &["rm", "maker"]).ok();
    // Data-packed volume: a fresh named volume gets the image's files, owners preserved.
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "fresh:/srv/data",
            "packed:1",
            "sh",
            "-c",
            "cat /srv/data/file; stat -c %u /srv/data/file",
        ],
    );
    assert_eq!(o.ok(), "packed\n1000\n");
    // nocopy leaves it empty.
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "empty:/srv/data:nocopy",
            "packed:1",
            "ls",
            "/srv/data",
        ],
    );
    assert_eq!(o.ok(), "");
    // The image VOLUME becomes an anonymous volume; --volumes-from shares it.
    c.run(
        &d,
        &["run", "-d", "--name", "holder", "packed:1", "sleep", "120"],
    )
    .ok();
    let anon = c
        .run(
            &d,
            &[
                "inspect",
                "-f",
                "{{range .Mounts}}{{.Name}}{{end}}",
                "holder",
            ],
        )
        .ok()
        .trim()
        .to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "holder",
            "busybox",
            "cat",
            "/srv/data/file",
        ],
    );
    assert_eq!(o.ok(), "packed\n");
    let e = c.run(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "holder:ro",
            "busybox",
            "sh",
            "-c",
            "echo x > /srv/data/y",
        ],
    );
    assert!(e.stderr.contains("Read-only file system"), "{}", e.stderr);
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "sharer",
            "--volumes-from",
            "holder",
            "busybox",
            "sleep",
            "120",
        ],
    )
    .ok();
    // rm -v keeps the anonymous volume while another container uses it…
    c.run(&d, &["rm", "-f", "-v", "holder"]).ok();
    assert!(c.run(&d, &["volume", "ls", "-q"]).ok().contains(&anon));
    // …and removes it with the last user.
    c.run(&d, &["rm", "-f", "-v", "sharer"]).ok();
    assert!(!c.run(&d, &["volume", "ls", "-q"]).ok().contains(&anon));
    // prune: anonymous ones only by default; -a takes unused named ones too.
    c.run(
        &d,
        &["create", "-v", "/anon", "--name", "dead", "busybox", "true"],
    )
    .ok();
    let anon2 = c
        .run(
            &d,
            &["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "dead"],
        )
        .ok()
        .trim()
        .to_string();
    c.run(&d, &["rm", "dead"]).ok();
    let p = c.run(&d, &["volume", "prune", "-f"]);
    assert!(p.ok().contains(&anon2), "{}", p.stdout);
    assert!(c.run(&d, &["volume", "ls", "-q"]).ok().contains("fresh"));
    c.run(&d, &["volume", "prune", "-a", "-f"]).ok();
    assert!(c.run(&d, &["volume", "ls", "-q"]).ok().trim().is_empty());
}

#[test]
fn tmpfs_cp_into_volumes_and_backup_restore() {
    let d = with_busybox();
    let c = Client::Docker;
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=1m",
            "busybox",
            "sh",
            "-c",
            "df -k /t | tail -1; dd if=/dev/zero of=/t/big bs=1k count=2048 2>&1; true",
        ],
    );
    let text = o.ok();
    assert!(text.contains("1024"), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/scratch:size=64k",
            "busybox",
            "sh",
            "-c",
            "mount | grep /scratch",
        ],
    );
    assert!(o.ok().contains("tmpfs on /scratch"), "{}", o.stdout);

    // cp into a path that is a volume lands in the volume.
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "reg",
            "-v",
            "regdata:/var/lib/registry",
            "busybox",
            "sleep",
            "120",
        ],
    )
    .ok();
    let f = d.dir.path().join("blob");
    std::fs::write(&f, "layer-bytes\n").unwrap();
    c.run(&d, &["cp", f.to_str().unwrap(), "reg:/var/lib/registry/"])
        .ok();
    let mp = c
        .run(
            &d,
            &["volume", "inspect", "-f", "{{.Mountpoint}}", "regdata"],
        )
        .ok()
        .trim()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{mp}/blob")).unwrap(),
        "layer-bytes\n"
    );
    let back = d.dir.path().join("back");
    c.run(&d, &["cp", "reg:/var/lib/registry", back.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(back.join("blob")).unwrap(),
        "layer-bytes\n"
    );

    // The notes' registry backup: tar the volume through a helper container, restore into a
    // new volume, data equal.
    let bdir = d.dir.path().join("backup");
    std::fs::create_dir_all(&bdir).unwrap();
    let bind = format!("{}:/backup", bdir.display());
    c.run(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "reg",
            "-v",
            &bind,
            "busybox",
            "tar",
            "cf",
            "/backup/reg.tar",
            "-C",
            "/var/lib/registry",
            ".",
        ],
    )
    .ok();
    c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "restored:/restore",
            "-v",
            &bind,
            "busybox",
            "tar",
            "xf",
            "/backup/reg.tar",
            "-C",
            "/restore",
        ],
    )
    .ok();
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "restored:/r",
            "busybox",
            "cat",
            "/r/blob",
        ],
    );
    assert_eq!(o.ok(), "layer-bytes\n");
    c.run(&d, &["rm", "-f", "reg"]).ok();
    let df = c.run(&d, &["system", "df"]);
    assert!(df.ok().contains("Local Volumes   2"), "{}", df.stdout);
}

#[test]
fn hostile_destinations_bad_options_and_crash_survival() {
    let mut d = with_busybox();
    let c = Client::Docker;
    // An image whose /evil climbs out with `..`: the mount lands inside the container.
    c.run(
        &d,
        &[
            "run",
            "--name",
            "mk",
            "busybox",
            "ln",
            "-s",
            "../../../../../../etc",
            "/evil",
        ],
    )
    .ok();
    c.run(&d, &["commit", "mk", "evil:1"]).ok();
    c.run(&d, &["rm", "mk"]).ok();
    let marker = format!("bt-vol-{}", std::process::id());
    let dest = format!("/evil/{marker}");
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            &format!("v1:{dest}"),
            "evil:1",
            "sh",
            "-c",
            &format!("test -d /etc/{marker} && echo inside"),
        ],
    );
    assert_eq!(o.ok().trim(), "inside");
    assert!(
        !std::path::Path::new("/etc").join(&marker).exists(),
        "a mount point was made on the host"
    );
    // Options docker does not know are refused by the client; nothing is created.
    let e = c.run(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=v2,target=/x,bogus=1",
            "busybox",
            "true",
        ],
    );
    assert_ne!(e.code, 0);
    let e = c.run(
        &d,
        &["run", "--rm", "-v", "/tmp:/x:bogus", "busybox", "true"],
    );
    assert!(e.err().contains("invalid mode: bogus"), "{}", e.stderr);
    assert_eq!(c.run(&d, &["volume", "ls", "-q"]).ok().trim(), "v1");
    // Volumes and their data survive a daemon crash.
    c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "v1:/data",
            "busybox",
            "sh",
            "-c",
            "echo durable > /data/f",
        ],
    )
    .ok();
    d.kill9();
    d.restart();
    let o = c.run(
        &d,
        &["run", "--rm", "-v", "v1:/data", "busybox", "cat", "/data/f"],
    );
    assert_eq!(o.ok(), "durable\n");
}

#[test]
fn local_driver_options_tmpfs_and_bind_backed_volumes() {
    let d = with_busybox();
    let c = Client::Docker;
    c.run(
        &d,
        &[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=1m",
            "ramvol",
        ],
    )
    .ok();
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "ramvol:/r",
            "busybox",
            "sh",
            "-c",
            "df -k /r | tail -1; echo in-ram > /r/f; cat /r/f",
        ],
    );
    let text = o.ok();
    assert!(text.contains("1024") && text.contains("in-ram"), "{text}");
    let insp = c.run(
        &d,
        &[
            "volume",
            "inspect",
            "-f",
            "{{.Options.type}} {{.Options.o}}",
            "ramvol",
        ],
    );
    assert_eq!(insp.ok().trim(), "tmpfs size=1m");
    // A bind-style local volume shows a host directory's files.
    let host = d.dir.path().join("bindsrc");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("hello"), "from host dir\n").unwrap();
    let dev = format!("device={}", host.display());
    c.run(
        &d,
        &[
            "volume",
            "create",
            "-o",
            "type=none",
            "-o",
            "o=bind",
            "-o",
            &dev,
            "bindvol",
        ],
    )
    .ok();
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "bindvol:/b",
            "busybox",
            "cat",
            "/b/hello",
        ],
    );
    assert_eq!(o.ok(), "from host dir\n");
    // Unmounted again once no container uses them.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(d.data_root.join("volumes").to_str().unwrap()),
        "volume mounts left behind"
    );
    let e = c.run(&d, &["volume", "create", "-o", "bogus=1", "x1"]);
    assert!(e.err().contains("invalid option"), "{}", e.stderr);
}
