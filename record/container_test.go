//go:build linux && (amd64 || arm64)

package record

import "testing"

func TestContainerOf(t *testing.T) {
	id := "3f4e1b8c2d9a7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
	for _, tc := range []struct{ path, want string }{
		{"/system.slice/docker-" + id + ".scope", id},
		{"/docker/" + id, id},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-" + id + ".scope", id},
		{"/kubepods/besteffort/pod0a1b2c3d-1111-2222-3333-444455556666/" + id, id},
		{"/machine.slice/libpod-" + id + ".scope/container", id},
		{"/machine.slice/crio-" + id + ".scope", id},
		{`/machine.slice/machine-my\x2dbox.scope/payload`, "my-box"},
		{"/system.slice/systemd-nspawn@web.service/payload", "web"},
		{"/user.slice/user-1000.slice/session-2.scope", ""},
		{"/system.slice/docker.service", ""},
		{"/system.slice/docker-" + id[:60] + ".scope", ""},
		{"/", ""},
		{"", ""},
	} {
		if got := ContainerOf(tc.path); got != tc.want {
			t.Errorf("ContainerOf(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
