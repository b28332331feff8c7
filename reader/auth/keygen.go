package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/orderservice/orders/reader/auth/ratelimit"
)

// KeyPrefix starts every API key, so that secret scanners and people
// recognise a leaked one.
const KeyPrefix = "ord_"

// keyDigits is the length of a key's random part: 32 random bytes
// (256 bits) in base 62 take at most 43 digits.
const keyDigits = 43

// GenerateKey returns a new API key (KeyPrefix and 256 random bits in
// base 62: letters and digits only, selected whole by a double click)
// and the hex SHA-256 that the keys file holds instead of it.
func GenerateKey() (key, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	digits := new(big.Int).SetBytes(b[:]).Text(62)
	key = KeyPrefix + strings.Repeat("0", keyDigits-len(digits)) + digits
	sum := hashKey(key)
	return key, hex.EncodeToString(sum[:]), nil
}

// KeyLine is the keys file line of a key: name, scopes, hash and, when
// rate is not nil, the key's own rate.
func KeyLine(name string, scopes []string, hash string, rate *ratelimit.Rate) string {
	line := name + ":" + strings.Join(scopes, ",") + ":" + hash
	if rate != nil {
		line += ":rate=" + rate.String()
	}
	return line
}

// KeysNew is the command `reader keys new --name NAME --scopes
// orders:read[,orders:pii] [--rate R/B]` (args are what follows "new").
// It writes the new key alone to stdout, for `TOKEN=$(reader keys new
// …)`, and to stderr a comment and the keys file line, so that `2>>keys`
// appends both to a keys file. The key exists nowhere else: it cannot be
// shown again.
func KeysNew(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reader keys new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the key's name, shown in logs, metrics and audit records (letters, digits, '.', '_', '-')")
	scopes := fs.String("scopes", "", "comma-separated grants: "+strings.Join(knownScopes, ", "))
	rateText := fs.String("rate", "", "the key's own rate limit, requests/s and burst as R/B (0: none); default: the reader's")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: reader keys new --name NAME --scopes %s[,%s] [--rate R/B]\n", ScopeRead, ScopePII)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("keys new: unexpected arguments after the flags")
	}
	if !validName(*name) {
		return errors.New("keys new: --name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	var list []string
	for sc := range strings.SplitSeq(*scopes, ",") {
		sc = strings.TrimSpace(sc)
		if !slices.Contains(knownScopes, sc) {
			return fmt.Errorf("keys new: --scopes: %q is not one of %s", sc, strings.Join(knownScopes, ", "))
		}
		if !slices.Contains(list, sc) {
			list = append(list, sc)
		}
	}
	var rate *ratelimit.Rate
	if *rateText != "" {
		r, err := ratelimit.ParseRate(*rateText)
		if err != nil {
			return fmt.Errorf("keys new: --rate: %w", err)
		}
		rate = &r
	}
	key, hash, err := GenerateKey()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stderr, "# %s, created %s\n%s\n", *name, time.Now().UTC().Format(time.RFC3339),
		KeyLine(*name, list, hash, rate)); err != nil {
		return fmt.Errorf("keys new: %w", err)
	}
	if _, err := fmt.Fprintln(stdout, key); err != nil {
		return fmt.Errorf("keys new: %w", err)
	}
	return nil
}
