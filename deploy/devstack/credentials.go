package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/ratelimit"
)

// The dev stack's two API keys: one for each view of an order.
const (
	keysFileName  = "dev-keys"
	credsFileName = "dev-credentials.env"

	piiTokenVar     = "ORDERS_PII_TOKEN"
	supportTokenVar = "ORDERS_SUPPORT_TOKEN"
)

// devKey is one of the dev stack's API keys: its name in the keys file,
// its grants, and the variable of dev-credentials.env that holds it.
type devKey struct {
	name   string
	scopes []string
	envVar string
}

var devKeys = []devKey{
	{"dev-pii", []string{auth.ScopeRead, auth.ScopePII}, piiTokenVar},
	{"dev-support", []string{auth.ScopeRead}, supportTokenVar},
}

// credentials are the dev stack's API keys and where they are written.
type credentials struct {
	keysFile  string            // the reader's READER_API_KEYS_FILE: hashes only
	credsFile string            // the keys themselves, mode 0600
	tokens    map[string]string // by envVar
	reused    bool
}

func (c *credentials) pii() string     { return c.tokens[piiTokenVar] }
func (c *credentials) support() string { return c.tokens[supportTokenVar] }

// devCredentials returns the dev stack's API keys for the reader at
// baseURL, written under dir as
// dev-keys (the reader's keys file: name, scopes and SHA-256 of each key)
// and dev-credentials.env (ORDERS_PII_TOKEN=… and ORDERS_SUPPORT_TOKEN=…,
// readable by the owner only). Keys written by an earlier run are reused
// when both files are still there and the reader's own parser finds each
// token in the keys file with its name and scopes, so that a browser
// signed in before a restart stays signed in; otherwise both keys are
// made anew (reader/auth's generator) and both files replaced.
func devCredentials(dir, baseURL string) (*credentials, error) {
	c := &credentials{
		keysFile:  filepath.Join(dir, keysFileName),
		credsFile: filepath.Join(dir, credsFileName),
	}
	if tokens, err := c.load(); err == nil {
		c.tokens, c.reused = tokens, true
		// An earlier version, or a hand, may have left it readable by others.
		if err := os.Chmod(c.credsFile, 0o600); err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	c.tokens = map[string]string{}
	var keys, creds bytes.Buffer
	keys.WriteString("# The API keys of `make run` (deploy/devstack), for the reader's READER_API_KEYS_FILE:\n" +
		"# name:scopes:sha256 of each key. The keys are in " + credsFileName + " beside this file.\n")
	creds.WriteString("# The API keys of `make run` (deploy/devstack) for " + baseURL + "/; keep them private.\n" +
		"#   . " + c.credsFile + "\n" +
		"#   curl -H \"Authorization: Bearer $" + supportTokenVar + "\" " + baseURL + "/orders\n" +
		"# " + piiTokenVar + " (orders:read, orders:pii) sees orders as ingested; " +
		supportTokenVar + " (orders:read) sees personal data masked.\n")
	for _, k := range devKeys {
		key, hash, err := auth.GenerateKey()
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		c.tokens[k.envVar] = key
		keys.WriteString(auth.KeyLine(k.name, k.scopes, hash, nil) + "\n")
		creds.WriteString(k.envVar + "=" + key + "\n")
	}
	// The keys file first: a credentials file never names keys that no
	// keys file holds.
	if err := writeFileAtomic(c.keysFile, keys.Bytes()); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if err := writeFileAtomic(c.credsFile, creds.Bytes()); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return c, nil
}

// load reads the tokens of an earlier run, and checks them against the
// keys file with the reader's parser.
func (c *credentials) load() (map[string]string, error) {
	tokens, err := readCredentials(c.credsFile)
	if err != nil {
		return nil, err
	}
	store, err := auth.NewKeyStore(c.keysFile, ratelimit.Rate{}, nil, nil)
	if err != nil {
		return nil, err
	}
	if store.Len() != len(devKeys) {
		return nil, fmt.Errorf("%s holds %d keys, want %d", c.keysFile, store.Len(), len(devKeys))
	}
	for _, k := range devKeys {
		p, ok := store.Lookup(tokens[k.envVar])
		if !ok || p.Name != k.name || !slices.Equal(p.Scopes, k.scopes) {
			return nil, fmt.Errorf("%s: %s does not match %s", c.credsFile, k.envVar, c.keysFile)
		}
	}
	return tokens, nil
}

// readCredentials parses a dev-credentials.env: VAR=value lines, #
// comments. Every devKeys variable must be there.
func readCredentials(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tokens := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: a line is not VAR=value", path)
		}
		tokens[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, k := range devKeys {
		if tokens[k.envVar] == "" {
			return nil, fmt.Errorf("%s has no %s", path, k.envVar)
		}
	}
	return tokens, nil
}

// writeFileAtomic replaces path with data, mode 0600, through a rename: a
// reader watching the directory never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path) // CreateTemp made it 0600
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
