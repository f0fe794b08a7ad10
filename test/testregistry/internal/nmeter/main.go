// Command nmeter is the part of busybox's nmeter that the Kubernetes e2e
// images' busybox has and Debian's lacks: `nmeter [-d MSEC] FORMAT`, where
// FORMAT's only directive is %[N]t, the time of day (UTC, a container's
// zone) with N digits of fractional seconds. It prints a line every MSEC
// milliseconds (default 1000) until its output is closed. The node e2e
// suite reads milliseconds with `nmeter -d0 '%3t' | head -n1`.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	delay, format, err := parseArgs(os.Args[1:])
	if err == nil {
		_, err = line(format, time.Now())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nmeter:", err)
		fmt.Fprintln(os.Stderr, "usage: nmeter [-d MSEC] FORMAT")
		os.Exit(1)
	}
	for {
		l, _ := line(format, time.Now())
		if _, err := os.Stdout.WriteString(l + "\n"); err != nil {
			os.Exit(0) // the reader is gone
		}
		time.Sleep(delay)
	}
}

// parseArgs reads busybox's option syntax: -d takes its value attached
// ("-d0", as the e2e specs write it) or as the next argument.
func parseArgs(args []string) (delay time.Duration, format string, err error) {
	delay = time.Second
	for len(args) > 0 && strings.HasPrefix(args[0], "-d") {
		v := strings.TrimPrefix(args[0], "-d")
		args = args[1:]
		if v == "" && len(args) > 0 {
			v, args = args[0], args[1:]
		}
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			return 0, "", fmt.Errorf("-d %q: not a number of milliseconds", v)
		}
		delay = time.Duration(ms) * time.Millisecond
	}
	if len(args) != 1 {
		return 0, "", fmt.Errorf("want one FORMAT, got %q", args)
	}
	return delay, args[0], nil
}

// line expands format at t.
func line(format string, t time.Time) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		j := i + 1
		digits := 0
		for j < len(format) && format[j] >= '0' && format[j] <= '9' {
			digits = digits*10 + int(format[j]-'0')
			j++
		}
		if j >= len(format) || format[j] != 't' || digits > 9 {
			return "", fmt.Errorf("%q: only %%[N]t (N ≤ 9) is supported", format)
		}
		layout := "15:04:05"
		if digits > 0 {
			layout += "." + strings.Repeat("0", digits)
		}
		b.WriteString(t.UTC().Format(layout))
		i = j
	}
	return b.String(), nil
}
