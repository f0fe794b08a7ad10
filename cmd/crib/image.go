package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/runtime/image"
)

const imageUsage = `usage: crib image import [flags] FILE|DIR|-

Imports every image of an archive into crib's image store, where the
kubelet finds it by name with no registry: docker save's tar, an OCI
image layout (a directory) or a tar of one, each plain or gzip-compressed;
- reads the archive from stdin. Only images for this node's platform are
imported (one from a multi-platform index). It works beside a running
daemon, which lists the images at once, and with none (a node image
being built).

flags:
`

// runImage is `crib image`: import is its only command.
func runImage(args []string) int {
	if len(args) > 0 && args[0] == "import" {
		return runImageImport(args[1:])
	}
	fmt.Fprint(os.Stderr, imageUsage)
	return 2
}

func runImageImport(args []string) int {
	fs := flag.NewFlagSet("crib image import", flag.ContinueOnError)
	configPath := fs.String("config", config.DefaultPath, "the daemon's configuration file, for its root and image limits; a missing default file means built-in defaults")
	root := fs.String("root", "", "the daemon's persistent data directory (default: the config's root), such as one in a node image's rootfs")
	name := fs.String("name", "", "one more tag for the archive's image (an archive of one image only)")
	base := fs.String("base-name", "", "the repository of images an OCI layout names only by a tag (org.opencontainers.image.ref.name)")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, imageUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*configPath, explicit)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crib image import:", err)
		return 1
	}
	if *root != "" {
		cfg.Root = *root
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer stop()
	out, err := importArchive(ctx, cfg, fs.Arg(0), image.ImportOptions{Name: *name, BaseName: *base})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crib image import:", err)
		return 1
	}
	for _, s := range out.Skipped {
		fmt.Fprintf(os.Stderr, "skipped %s (another platform)\n", s)
	}
	for _, img := range out.Images {
		fmt.Printf("imported %s %s\n", img.ID, strings.Join(img.RepoTags, " "))
	}
	return 0
}

// importArchive imports from stdin ("-"), a directory (an OCI layout) or
// a file (a tar) into the store under the root cfg names.
func importArchive(ctx context.Context, cfg config.Config, arg string, opts image.ImportOptions) (image.Imported, error) {
	im, err := image.OpenImporter(filepath.Join(cfg.Root, "images"), cfg.Image, image.NodePlatform())
	if err != nil {
		return image.Imported{}, err
	}
	if arg == "-" {
		return im.ImportTar(ctx, os.Stdin, opts)
	}
	f, err := os.Open(arg)
	if err != nil {
		return image.Imported{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return image.Imported{}, err
	}
	if fi.IsDir() {
		return im.ImportLayout(ctx, arg, opts)
	}
	return im.ImportTar(ctx, f, opts)
}
