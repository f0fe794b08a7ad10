// Command nnp prints its effective user id. Installed set-user-ID root in the
// test image standing in for e2e-test-images/nonewprivs, it shows whether a
// container's no_new_privs bit stopped the exec from raising the effective
// uid: critest's NoNewPrivs specs run it as uid 1000 and read the line.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
