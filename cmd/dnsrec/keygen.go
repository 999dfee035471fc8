package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/anchor"
)

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "make a signing key for record --sign-key: writes the private key to FILE, prints the public key",
		Description: `Writes an Ed25519 signed-note private key to FILE (mode 0600; refuses an
existing file) and prints its verifier key on stdout: give FILE to
record --sign-key (from removable media, say) and the printed key to
query verify --anchor-key. See docs/anchoring.md.

   dnsrec keygen -o /media/usb/dnsrec.key`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "private key `FILE` to create"},
			&cli.StringFlag{Name: "name", Value: "dnsrec", Usage: "the key's `NAME`, shown in every signature"},
		},
		Action: func(c *cli.Context) error {
			skey, vkey, err := anchor.GenerateKey(c.String("name"))
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			f, err := os.OpenFile(c.String("output"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if _, err := fmt.Fprintln(f, skey); err != nil {
				f.Close()
				return fmt.Errorf("keygen: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			fmt.Fprintln(c.App.Writer, vkey)
			return nil
		},
	}
}
