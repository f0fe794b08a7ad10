package initmsg

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The init decodes its config without encoding/json's typed decoding.
// That, the first time a process decodes a struct type, builds the field
// tables and the encoders of every type reachable from it: perf put 9–11 %
// of a fresh init's CPU there, about half of it building encoders it never
// uses, paid again by every container start and exec. encoding/json still
// parses the message, into maps, slices and json.Numbers (no struct
// reflection); the functions below copy that tree into the Config, field
// by field, with the JSON names the wire types give. What a container
// seldom has (hooks, an uncompiled seccomp profile, id mappings, …) is
// decoded typed, only when it is there (typed). Keys match exactly: the
// launcher's encoder writes them.

// decodeConfig parses one config message.
func decodeConfig(data []byte, cfg *Config) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // exact uint64s (RLIM_INFINITY), not float64s
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return fmt.Errorf("decode init message: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decode init message: data after the config")
	}
	d := &decoder{}
	c, ok := d.object(at{index: -1}, tree)
	if !ok {
		return d.errOr(errors.New("decode init message: the config is null"))
	}
	out := Config{Version: int(c.int("version", 64)), Role: c.str("role"), DevShm: c.str("devShm")}
	if s, ok := c.obj("spec"); ok {
		out.Spec = s.spec()
	}
	if r, ok := c.obj("rootfs"); ok {
		out.Rootfs = Rootfs{Lower: r.strs("lower"), Upper: r.str("upper"), Work: r.str("work")}
	}
	if f, ok := c.obj("seccompFilter"); ok {
		out.Seccomp = &SeccompFilter{Program: f.base64("program"), Flags: uint(f.uint("flags", strconv.IntSize))}
	}
	out.CgroupMounts = each(c, "cgroupMounts", func(m object) CgroupMount {
		return CgroupMount{MountPoint: m.str("mountPoint"), Root: m.str("root"), FSType: m.str("fsType"),
			Controllers: m.strs("controllers")}
	})
	c.typed("containerHooks", &out.Hooks)
	if d.err != nil {
		return d.err
	}
	*cfg = out
	return nil
}

func (o object) spec() *specs.Spec {
	s := &specs.Spec{Version: o.str("ociVersion"), Hostname: o.str("hostname"), Domainname: o.str("domainname")}
	if p, ok := o.obj("process"); ok {
		s.Process = p.process()
	}
	if r, ok := o.obj("root"); ok {
		s.Root = &specs.Root{Path: r.str("path"), Readonly: r.boolean("readonly")}
	}
	s.Mounts = each(o, "mounts", func(mo object) specs.Mount {
		m := specs.Mount{Destination: mo.str("destination"), Type: mo.str("type"), Source: mo.str("source"),
			Options: mo.strs("options")}
		mo.typed("uidMappings", &m.UIDMappings)
		mo.typed("gidMappings", &m.GIDMappings)
		return m
	})
	if l, ok := o.obj("linux"); ok {
		s.Linux = l.linux()
	}
	return s
}

func (o object) process() *specs.Process {
	p := &specs.Process{Terminal: o.boolean("terminal"), Args: o.strs("args"), CommandLine: o.str("commandLine"),
		Env: o.strs("env"), Cwd: o.str("cwd"), NoNewPrivileges: o.boolean("noNewPrivileges"),
		ApparmorProfile: o.str("apparmorProfile"), SelinuxLabel: o.str("selinuxLabel")}
	if b, ok := o.obj("consoleSize"); ok {
		p.ConsoleSize = &specs.Box{Height: uint(b.uint("height", strconv.IntSize)), Width: uint(b.uint("width", strconv.IntSize))}
	}
	if u, ok := o.obj("user"); ok {
		p.User = specs.User{UID: uint32(u.uint("uid", 32)), GID: uint32(u.uint("gid", 32)), Username: u.str("username")}
		if u.has("umask") {
			p.User.Umask = ptr(uint32(u.uint("umask", 32)))
		}
		if l := u.list("additionalGids"); l != nil {
			p.User.AdditionalGids = make([]uint32, len(l))
			for i, v := range l {
				p.User.AdditionalGids[i] = uint32(u.d.uint(u.elem("additionalGids", i), v, 32))
			}
		}
	}
	if c, ok := o.obj("capabilities"); ok {
		p.Capabilities = &specs.LinuxCapabilities{Bounding: c.strs("bounding"), Effective: c.strs("effective"),
			Inheritable: c.strs("inheritable"), Permitted: c.strs("permitted"), Ambient: c.strs("ambient")}
	}
	p.Rlimits = each(o, "rlimits", func(r object) specs.POSIXRlimit {
		return specs.POSIXRlimit{Type: r.str("type"), Hard: r.uint("hard", 64), Soft: r.uint("soft", 64)}
	})
	if o.has("oomScoreAdj") {
		p.OOMScoreAdj = ptr(int(o.int("oomScoreAdj", strconv.IntSize)))
	}
	o.typed("scheduler", &p.Scheduler)
	o.typed("ioPriority", &p.IOPriority)
	o.typed("execCPUAffinity", &p.ExecCPUAffinity)
	return p
}

func (o object) linux() *specs.Linux {
	l := &specs.Linux{Sysctl: o.strMap("sysctl"), RootfsPropagation: o.str("rootfsPropagation"),
		MaskedPaths: o.strs("maskedPaths"), ReadonlyPaths: o.strs("readonlyPaths"), MountLabel: o.str("mountLabel")}
	l.Namespaces = each(o, "namespaces", func(n object) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: specs.LinuxNamespaceType(n.str("type")), Path: n.str("path")}
	})
	l.Devices = each(o, "devices", func(n object) specs.LinuxDevice {
		dev := specs.LinuxDevice{Path: n.str("path"), Type: n.str("type"), Major: n.int("major", 64), Minor: n.int("minor", 64)}
		if n.has("fileMode") {
			dev.FileMode = ptr(os.FileMode(n.uint("fileMode", 32)))
		}
		if n.has("uid") {
			dev.UID = ptr(uint32(n.uint("uid", 32)))
		}
		if n.has("gid") {
			dev.GID = ptr(uint32(n.uint("gid", 32)))
		}
		return dev
	})
	o.typed("uidMappings", &l.UIDMappings)
	o.typed("gidMappings", &l.GIDMappings)
	o.typed("seccomp", &l.Seccomp)
	o.typed("memoryPolicy", &l.MemoryPolicy)
	o.typed("personality", &l.Personality)
	o.typed("timeOffsets", &l.TimeOffsets)
	return l
}

func ptr[T any](v T) *T { return &v }

// each decodes the array of objects at key with one; a null element is
// the zero T, as encoding/json leaves it.
func each[T any](o object, key string, one func(object) T) []T {
	l := o.list(key)
	if l == nil {
		return nil
	}
	out := make([]T, len(l))
	for i, v := range l {
		if e, ok := o.d.object(o.elem(key, i), v); ok {
			out[i] = one(e)
		}
	}
	return out
}

// A decoder keeps the first error; every read after it returns zero.
type decoder struct{ err error }

func (d *decoder) errOr(err error) error {
	if d.err != nil {
		return d.err
	}
	return err
}

// fail records that the value at a is not what the field takes.
func (d *decoder) fail(a at, want string, v any) {
	if d.err == nil {
		d.err = fmt.Errorf("decode init message: %s: want %s, got %s", a, want, kind(v))
	}
}

// at names a value of the tree for an error: key (and index, when it is
// an array's element) in the object at path. The name is built only for
// an error, not for every field read.
type at struct {
	path, key string
	index     int // -1: not an element
}

func (a at) String() string {
	s := a.key
	if a.path != "" {
		s = a.path + "." + s
	}
	if a.index >= 0 {
		s += "[" + strconv.Itoa(a.index) + "]"
	}
	if s == "" {
		return "the config"
	}
	return s
}

// kind names a JSON value's type as the messages above say it.
func kind(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "the number " + string(v)
	case bool:
		return "a boolean"
	}
	return "null"
}

// object is v as an object; false for null (an absent field).
func (d *decoder) object(a at, v any) (object, bool) {
	switch m := v.(type) {
	case map[string]any:
		path := ""
		if a.key != "" {
			path = a.String()
		}
		return object{d: d, path: path, m: m}, true
	case nil:
	default:
		d.fail(a, "an object", v)
	}
	return object{}, false
}

func (d *decoder) str(a at, v any) string {
	s, ok := v.(string)
	if !ok && v != nil {
		d.fail(a, "a string", v)
	}
	return s
}

func (d *decoder) uint(a at, v any, bits int) uint64 {
	return integer(d, a, v, bits, "an unsigned", strconv.ParseUint)
}

func (d *decoder) int(a at, v any, bits int) int64 {
	return integer(d, a, v, bits, "a", strconv.ParseInt)
}

// integer parses v, a json.Number, with parse, as encoding/json does an
// integer field: a fraction, an exponent or a value out of range fails.
// null is 0.
func integer[T int64 | uint64](d *decoder, a at, v any, bits int, article string,
	parse func(string, int, int) (T, error)) T {
	if v == nil {
		return 0
	}
	n, ok := v.(json.Number)
	i, err := parse(string(n), 10, bits)
	if !ok || err != nil {
		d.fail(a, fmt.Sprintf("%s %d-bit integer", article, bits), v)
	}
	return i
}

// object is one JSON object of the tree, with its path for errors.
type object struct {
	d    *decoder
	path string
	m    map[string]any
}

func (o object) field(key string) at       { return at{path: o.path, key: key, index: -1} }
func (o object) elem(key string, i int) at { return at{path: o.path, key: key, index: i} }

// has says whether key is there and not null.
func (o object) has(key string) bool { return o.m[key] != nil }

func (o object) obj(key string) (object, bool) { return o.d.object(o.field(key), o.m[key]) }

func (o object) str(key string) string { return o.d.str(o.field(key), o.m[key]) }

func (o object) uint(key string, bits int) uint64 { return o.d.uint(o.field(key), o.m[key], bits) }

func (o object) int(key string, bits int) int64 { return o.d.int(o.field(key), o.m[key], bits) }

func (o object) boolean(key string) bool {
	v := o.m[key]
	b, ok := v.(bool)
	if !ok && v != nil {
		o.d.fail(o.field(key), "a boolean", v)
	}
	return b
}

// list is the array at key; nil when absent or null.
func (o object) list(key string) []any {
	v := o.m[key]
	l, ok := v.([]any)
	if !ok && v != nil {
		o.d.fail(o.field(key), "an array", v)
	}
	return l
}

func (o object) strs(key string) []string {
	l := o.list(key)
	if l == nil {
		return nil
	}
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = o.d.str(o.elem(key, i), v)
	}
	return out
}

func (o object) strMap(key string) map[string]string {
	m, ok := o.obj(key)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m.m))
	for k := range m.m {
		out[k] = m.str(k)
	}
	return out
}

// base64 is a []byte field: a base64 string, as encoding/json writes it.
func (o object) base64(key string) []byte {
	s := o.str(key)
	if !o.has(key) {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		o.d.fail(o.field(key), "base64", o.m[key])
	}
	return b
}

// typed decodes the value at key into v with encoding/json, when it is
// there: for the parts of a spec a container seldom has, whose types are
// worth their cost only then. The value is encoded back first; the error
// names the field.
func (o object) typed(key string, v any) {
	if !o.has(key) || o.d.err != nil {
		return
	}
	b, err := json.Marshal(o.m[key])
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		o.d.err = fmt.Errorf("decode init message: %s: %w", o.field(key).String(), err)
	}
}
