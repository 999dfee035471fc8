//go:build linux && (amd64 || arm64)

package record_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The privileged tests run inside a private network and mount namespace that
// TestMain creates by re-executing the test binary: loopback there is ours
// alone (port 53 is free whatever the host runs), and /etc/resolv.conf can
// point glibc at the test's DNS server without touching the host's file.
const (
	envSandbox = "DNSREC_TEST_SANDBOX"
	envChild   = "DNSREC_TEST_CHILD"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envServe) != "":
		os.Exit(serveMain())
	case os.Getenv(envSpoof) != "":
		os.Exit(spoofMain())
	case os.Getenv(envChild) != "":
		os.Exit(childMain())
	}
	if os.Geteuid() == 0 && os.Getenv(envSandbox) == "" {
		os.Exit(reexecInSandbox())
	}
	if os.Getenv(envSandbox) != "" {
		if err := setupSandbox(); err != nil {
			fmt.Fprintf(os.Stderr, "set up test sandbox: %v\n", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if resolvConf != "" {
		// The bind mount dies with the namespace; the file's directory
		// would stay in /tmp.
		os.RemoveAll(filepath.Dir(resolvConf))
	}
	os.Exit(code)
}

func reexecInSandbox() int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "find test binary: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envSandbox+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "run tests in a network namespace: %v\n", err)
		return 1
	}
	return 0
}

// resolvConf is what glibc reads inside the sandbox.
var resolvConf string

func setupSandbox() error {
	// Keep our mounts to ourselves.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := linkUp("lo"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "dnsrec-sandbox-")
	if err != nil {
		return err
	}
	resolvConf = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n"), 0o644); err != nil {
		return err
	}
	if _, err := os.Stat("/etc/resolv.conf"); err != nil {
		return nil // a minimal VM image: no glibc clients to point anywhere
	}
	if err := unix.Mount(resolvConf, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount resolv.conf: %w", err)
	}
	return nil
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get %s flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}
