package spec

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenInputs are whole containers whose specs are reviewed as JSON: a
// change to any rule shows up as a diff of a document a reader can check
// against runc's config.json.
func goldenInputs() map[string]Input {
	typical := baseInput()
	typical.Image = ImageConfig{
		Entrypoint: []string{"/docker-entrypoint.sh"},
		Cmd:        []string{"nginx", "-g", "daemon off;"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.27.0"},
		WorkingDir: "/",
		User:       "app",
		StopSignal: "SIGQUIT",
	}
	typical.Config.Envs = []*criapi.KeyValue{{Key: "KUBERNETES_SERVICE_HOST", Value: []byte("10.96.0.1")}}
	typical.Config.Mounts = []*criapi.Mount{
		{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount", HostPath: "/var/lib/kubelet/pods/uid-1/volumes/data", Readonly: true},
		{ContainerPath: "/dev/termination-log", HostPath: "/var/lib/kubelet/pods/uid-1/etc-hosts"},
	}
	typical.Config.Linux.Resources = &criapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 128 << 20, OomScoreAdj: 984,
	}
	typical.Config.Linux.SecurityContext.Capabilities = &criapi.Capability{DropCapabilities: []string{"NET_RAW"}}
	typical.Config.Linux.SecurityContext.SupplementalGroups = []int64{2000}
	typical.Config.Linux.SecurityContext.Seccomp = &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}
	typical.Config.Annotations = map[string]string{"io.kubernetes.container.hash": "5c1c7c1f"}
	typical.Sandbox.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
	typical.RDTClass = "gold"

	privileged := baseInput()
	privileged.Sandbox.Linux.SecurityContext.Privileged = true
	privileged.Config.Linux.SecurityContext.Privileged = true
	privileged.Config.Devices = []*criapi.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rwm"}}
	privileged.HostDevices = func() ([]specs.LinuxDevice, error) {
		return []specs.LinuxDevice{{Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232}}, nil
	}

	hostNet := baseInput()
	for _, o := range []*criapi.NamespaceOption{
		hostNet.Config.Linux.SecurityContext.NamespaceOptions,
		hostNet.Sandbox.Linux.SecurityContext.NamespaceOptions,
	} {
		o.Network = criapi.NamespaceMode_NODE
	}
	hostNet.NetNS, hostNet.UTSNS = "", ""
	hostNet.Config.Linux.SecurityContext.RunAsUser = &criapi.Int64Value{Value: 65534}
	hostNet.Config.Linux.SecurityContext.ReadonlyRootfs = true
	hostNet.Config.Linux.SecurityContext.NoNewPrivs = true
	hostNet.Config.Linux.SecurityContext.Capabilities = &criapi.Capability{
		DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"},
	}
	hostNet.Sandbox.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1"}

	return map[string]Input{"pod_container": typical, "privileged": privileged, "host_network": hostNet}
}

func TestGolden(t *testing.T) {
	for name, in := range goldenInputs() {
		t.Run(name, func(t *testing.T) {
			s := mustContainer(t, in)
			got, err := json.MarshalIndent(s, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			file := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./cri/spec -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", file, cmp.Diff(string(want), string(got)))
			}
			// The document must read back as the same spec.
			var back specs.Spec
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		})
	}
}
