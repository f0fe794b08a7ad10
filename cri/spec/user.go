package spec

import (
	"bufio"
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// passwdEntry is one line of /etc/passwd, the fields crib needs.
type passwdEntry struct {
	name     string
	uid, gid uint32
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// processUser resolves the user the process runs as, with the precedence
// containerd uses: RunAsUsername, RunAsUser, the image's USER, root. The
// primary group is RunAsGroup, else the one the user string names, else
// the user's passwd group, else 0.
func processUser(in Input) (specs.User, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	passwd := parsePasswd(in.Passwd)
	groups := parseGroup(in.Group)
	var (
		u   resolved
		err error
	)
	switch {
	case sc.GetRunAsUser() != nil && sc.GetRunAsUsername() != "":
		return specs.User{}, invalidf("run_as_user and run_as_username are both set")
	case sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "":
		// CRI: "run_as_group should only be specified when run_as_user or
		// run_as_username is specified; otherwise, the runtime MUST error."
		return specs.User{}, invalidf("run_as_group is set without run_as_user or run_as_username")
	case sc.GetRunAsUsername() != "":
		u, err = byUsername(passwd, sc.GetRunAsUsername())
	case sc.GetRunAsUser() != nil:
		v := sc.GetRunAsUser().GetValue()
		if v < 0 || v >= math.MaxUint32 {
			return specs.User{}, invalidf("run_as_user %d out of range", v)
		}
		u = byUID(passwd, uint32(v))
	default:
		u, err = parseUserString(in.Image.User, passwd, groups)
	}
	if err != nil {
		return specs.User{}, err
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if g.GetValue() < 0 || g.GetValue() >= math.MaxUint32 {
			return specs.User{}, invalidf("run_as_group %d out of range", g.GetValue())
		}
		u.gid = uint32(g.GetValue())
	}
	extra, err := additionalGids(sc, u, groups)
	if err != nil {
		return specs.User{}, err
	}
	return specs.User{UID: u.uid, GID: u.gid, AdditionalGids: extra}, nil
}

// resolved is a user after lookup; name is "" for a uid the image's passwd
// does not list.
type resolved struct {
	name     string
	uid, gid uint32
}

// byUsername resolves run_as_username. A numeric name is a uid, as
// containerd reads it (its user string goes through the same parser as an
// image USER), so "1000" runs as uid 1000 with or without a passwd entry.
// A name with a colon would be read as user:group there; the CRI field is
// a user name only, so it is refused rather than half-honoured.
func byUsername(passwd []passwdEntry, name string) (resolved, error) {
	if strings.ContainsAny(name, ":\x00") {
		return resolved{}, invalidf("run_as_username %q is not a user name", name)
	}
	id, ok, err := parseID(name)
	if err != nil {
		return resolved{}, invalidf("run_as_username %q: %v", name, err)
	}
	if ok {
		return byUID(passwd, id), nil
	}
	return byName(passwd, name)
}

// byName looks a user name up. The CRI says a named user MUST exist in
// the image and the runtime MUST error otherwise; the request (or the
// image's USER) is what is wrong, so the error is InvalidArgument, never
// NotFound, which a client could read as "the pod or container is gone".
func byName(passwd []passwdEntry, name string) (resolved, error) {
	for _, p := range passwd {
		if p.name == name {
			return resolved{name: p.name, uid: p.uid, gid: p.gid}, nil
		}
	}
	return resolved{}, invalidf("user %q not found in the image's /etc/passwd", name)
}

// byUID looks a uid up; a uid the image does not list runs with gid 0, as
// in Docker and containerd (numeric users need no passwd entry).
func byUID(passwd []passwdEntry, uid uint32) resolved {
	for _, p := range passwd {
		if p.uid == uid {
			return resolved{name: p.name, uid: p.uid, gid: p.gid}
		}
	}
	return resolved{uid: uid}
}

// parseUserString resolves an image USER: "", "user", "uid", "user:group",
// "uid:gid", "uid:group" or "user:gid" (OCI image spec, config.User).
func parseUserString(s string, passwd []passwdEntry, groups []groupEntry) (resolved, error) {
	if s == "" {
		return byUID(passwd, 0), nil
	}
	userPart, groupPart, hasGroup := strings.Cut(s, ":")
	if userPart == "" || (hasGroup && (groupPart == "" || strings.Contains(groupPart, ":"))) {
		return resolved{}, invalidf("image user %q is not user[:group]", s)
	}
	var (
		u   resolved
		err error
	)
	if id, ok, perr := parseID(userPart); perr != nil {
		return resolved{}, invalidf("image user %q: %v", s, perr)
	} else if ok {
		u = byUID(passwd, id)
	} else if u, err = byName(passwd, userPart); err != nil {
		return resolved{}, err
	}
	if !hasGroup {
		return u, nil
	}
	if id, ok, perr := parseID(groupPart); perr != nil {
		return resolved{}, invalidf("image user %q: %v", s, perr)
	} else if ok {
		u.gid = id
		return u, nil
	}
	for _, g := range groups {
		if g.name == groupPart {
			u.gid = g.gid
			return u, nil
		}
	}
	return resolved{}, invalidf("group %q not found in the image's /etc/group", groupPart)
}

// parseID reports whether s is numeric and, if so, its value. A numeric
// string that does not fit a uid_t (or is (uid_t)-1, "no change" to
// setresuid(2)) is an error rather than a name.
func parseID(s string) (uint32, bool, error) {
	if strings.TrimLeft(s, "0123456789") != "" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == math.MaxUint32 {
		return 0, false, invalidf("id %q out of range", s)
	}
	return uint32(v), true, nil
}

// additionalGids returns the supplementary groups: with the Merge policy
// (the default) the groups the image's /etc/group lists the user in plus
// SupplementalGroups; with Strict only SupplementalGroups. The primary gid
// is always included so setgroups(2) cannot leave a group the image gave
// the user out of the list (containerd's fix for CVE-2023-25173).
func additionalGids(sc *criapi.LinuxContainerSecurityContext, u resolved, groups []groupEntry) ([]uint32, error) {
	gids := []uint32{u.gid}
	switch sc.GetSupplementalGroupsPolicy() {
	case criapi.SupplementalGroupsPolicy_Merge:
		if u.name != "" {
			for _, g := range groups {
				if slices.Contains(g.members, u.name) {
					gids = append(gids, g.gid)
				}
			}
		}
	case criapi.SupplementalGroupsPolicy_Strict:
	default:
		return nil, invalidf("unknown supplemental_groups_policy %d", sc.GetSupplementalGroupsPolicy())
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g >= math.MaxUint32 {
			return nil, invalidf("supplemental group %d out of range", g)
		}
		gids = append(gids, uint32(g))
	}
	slices.Sort(gids)
	return slices.Compact(gids), nil
}

// parsePasswd parses /etc/passwd, skipping lines it cannot read, as libc's
// getpwent does.
func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	eachLine(b, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, ok1, err1 := parseID(f[2])
		gid, ok2, err2 := parseID(f[3])
		if f[0] == "" || !ok1 || !ok2 || err1 != nil || err2 != nil {
			return
		}
		out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid})
	})
	return out
}

// parseGroup parses /etc/group the same way.
func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	eachLine(b, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, ok, err := parseID(f[2])
		if f[0] == "" || !ok || err != nil {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.members = append(g.members, m)
				}
			}
		}
		out = append(out, g)
	})
	return out
}

// eachLine calls fn with the colon-separated fields of each non-comment line.
func eachLine(b []byte, fn func([]string)) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}
