package initproc

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOptions is an OCI mount's option list, split the way mount(8) does:
// flags for mount(2), propagation changes (applied one by one after the
// mount), recursive attributes for mount_setattr(2), and the rest as the
// filesystem's data string.
type mountOptions struct {
	flags       uintptr
	propagation []uintptr
	attrSet     uint64
	attrClr     uint64
	data        []string
}

type flagOpt struct {
	clear bool
	flag  uintptr
}

var mountFlags = map[string]flagOpt{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

var propagationFlags = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// recursiveAttrs are the runtime-spec's "r"-prefixed options, applied with
// mount_setattr(AT_RECURSIVE) to a mount and everything under it (plain
// "ro" on an rbind only makes the top mount read-only).
var recursiveAttrs = map[string]flagOpt{
	"rro":          {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":          {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":      {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":        {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":       {false, unix.MOUNT_ATTR_NODEV},
	"rdev":         {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":      {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":        {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":  {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":    {true, unix.MOUNT_ATTR_NODIRATIME},
	"rnosymfollow": {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":   {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// unsupportedOptions are runtime-spec extensions init does not implement;
// silently dropping them would change what the container sees.
var unsupportedOptions = map[string]bool{
	"idmap": true, "ridmap": true, "tmpcopyup": true,
}

func parseMountOptions(opts []string) (mountOptions, error) {
	var o mountOptions
	for _, opt := range opts {
		if f, ok := mountFlags[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
			} else {
				o.flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[opt]; ok {
			o.propagation = append(o.propagation, p)
			continue
		}
		if a, ok := recursiveAttrs[opt]; ok {
			if a.clear {
				o.attrClr |= uint64(a.flag)
				o.attrSet &^= uint64(a.flag)
			} else {
				o.attrSet |= uint64(a.flag)
				o.attrClr &^= uint64(a.flag)
			}
			continue
		}
		if unsupportedOptions[opt] {
			return o, fmt.Errorf("mount option %q: not supported yet", opt)
		}
		if strings.ContainsRune(opt, ',') {
			return o, fmt.Errorf("mount option %q contains a comma", opt)
		}
		o.data = append(o.data, opt)
	}
	return o, nil
}

// lockedFlags maps statfs(2) f_flags to the mount flags a bind remount must
// keep: in a user namespace the kernel refuses (EPERM) a remount that would
// clear a flag the mount inherited from a more privileged namespace.
func lockedFlags(statfsFlags int64) uintptr {
	var f uintptr
	for _, m := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if statfsFlags&m.st != 0 {
			f |= m.ms
		}
	}
	return f
}
