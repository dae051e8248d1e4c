#!/usr/bin/env python3
"""Writes a docker-archive (docker save format) holding one image of N layers of M MiB of random
bytes each, tagged TAG: the 200 MB / 5-layer image of the registry benchmark.
Usage: make-big-archive.py OUT.tar TAG N M"""
import tarfile, io, json, hashlib, os, sys
out, tag, n, mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
layers=[]; diff_ids=[]
with tarfile.open(out, "w") as t:
    for i in range(n):
        data=os.urandom(mb<<20)
        b=io.BytesIO()
        with tarfile.open(fileobj=b, mode="w") as lt:
            ti=tarfile.TarInfo(f"f{i}"); ti.size=len(data); ti.mode=0o644; lt.addfile(ti, io.BytesIO(data))
        raw=b.getvalue(); d=hashlib.sha256(raw).hexdigest()
        ti=tarfile.TarInfo(f"blobs/sha256/{d}"); ti.size=len(raw); t.addfile(ti, io.BytesIO(raw))
        layers.append(f"blobs/sha256/{d}"); diff_ids.append("sha256:"+d)
    cfg=json.dumps({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":diff_ids},"config":{}}).encode()
    c=hashlib.sha256(cfg).hexdigest()
    ti=tarfile.TarInfo(f"blobs/sha256/{c}"); ti.size=len(cfg); t.addfile(ti, io.BytesIO(cfg))
    m=json.dumps([{"Config":f"blobs/sha256/{c}","RepoTags":[tag],"Layers":layers}]).encode()
    ti=tarfile.TarInfo("manifest.json"); ti.size=len(m); t.addfile(ti, io.BytesIO(m))
