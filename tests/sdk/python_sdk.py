"""Drives berthd through Python's docker SDK (a client nobody here wrote)."""
import sys

import docker

c = docker.DockerClient(base_url=sys.argv[1], timeout=60)
assert c.ping()
v = c.version()
assert v["ApiVersion"] == "1.47", v
out = c.containers.run("busybox", ["sh", "-c", "echo hi; echo err >&2"], remove=True)
assert out == b"hi\n", out
ct = c.containers.run("busybox", ["sleep", "30"], detach=True, name="sdk1", labels={"via": "sdk"})
ct.reload()
assert ct.status == "running", ct.status
assert ct.name == "sdk1" and ct.labels["via"] == "sdk"
r = ct.exec_run(["sh", "-c", "echo x; exit 4"])
assert r.exit_code == 4 and r.output == b"x\n", r
assert [x.name for x in c.containers.list(filters={"label": "via=sdk"})] == ["sdk1"]
ct.stop(timeout=1)
ct.reload()
assert ct.status == "exited", ct.status
assert ct.wait()["StatusCode"] == 137
logs = c.containers.run("busybox", ["echo", "logged"], detach=True)
logs.wait()
assert logs.logs() == b"logged\n"
logs.remove()
ct.remove()
imgs = c.images.list()
assert any("busybox:latest" in i.tags for i in imgs), [i.tags for i in imgs]
img = c.images.get("busybox")
img.tag("sdk/retag", "v1")
assert "sdk/retag:v1" in c.images.get("sdk/retag:v1").tags
c.images.remove("sdk/retag:v1")
print("python-sdk-ok")
