// Package localserver starts throwaway PostgreSQL and Redis servers from the
// binaries installed on the machine, for the development stack and for
// tests on machines where no shared server answers. A throwaway server runs
// on loopback with trust authentication and durability off, keeps its files
// in one directory, and loses everything when stopped.
package localserver
