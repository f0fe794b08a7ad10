// Command nmeter is the part of busybox's nmeter that the Kubernetes e2e
// images' busybox has and Debian's lacks: `nmeter [-d MSEC] FORMAT`, where
// FORMAT's only directive is %[N]t, the time of day (UTC, a container's
// zone) with N digits of fractional seconds. It prints a line every MSEC
// milliseconds (default 1000) until its output is closed. The node e2e
// suite reads milliseconds with `nmeter -d0 '%3t' | head -n1`.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	delay := flag.Int("d", 1000, "milliseconds between lines")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: nmeter [-d MSEC] FORMAT")
		os.Exit(1)
	}
	format := flag.Arg(0)
	if _, err := line(format, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, "nmeter:", err)
		os.Exit(1)
	}
	for {
		l, _ := line(format, time.Now())
		if _, err := os.Stdout.WriteString(l + "\n"); err != nil {
			os.Exit(0) // the reader is gone
		}
		time.Sleep(time.Duration(*delay) * time.Millisecond)
	}
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
