// Package envconf reads a service's configuration from environment
// variables into a struct tagged for kelseyhightower/envconfig, and keeps
// in one place the conventions the services share:
//
//   - Every variable carries the service's prefix: field BatchSize with
//     `split_words:"true"` is INGESTOR_BATCH_SIZE. A field tagged
//     `envconfig:"NAME"` is a setting shared between services
//     (DATABASE_URL, REDIS_URL, KAFKA_BROKERS, LOG_FORMAT, LOG_LEVEL): it is
//     read as PREFIX_NAME and, when that is unset, as NAME. The other fields
//     have no unprefixed fallback, so that a generic READ_TIMEOUT meant for
//     another program cannot leak in.
//   - An empty variable counts as unset, as in a shell's ${X:-default}:
//     compose files and manifests write empty values for "not set".
//   - For any variable X, X_FILE names a file whose content (less its
//     trailing newline) is the value, as Docker and Kubernetes mount
//     secrets. X and X_FILE both set is an error.
//   - Defaults live in `default` tags only, and `required:"true"` marks a
//     setting without one; `desc` is the meaning printed by [Usage].
//   - [Load] reports every bad variable at once in one [*Error], naming the
//     variable the value came from and never repeating a value.
//   - The validators ([URL], [ListenAddr], [Positive], [Range], [AtLeast],
//     [NotEmpty]) and the types [LogLevel] and [LogFormat] give both
//     services the same rules and the same messages.
//
// envconfig names the variables (split_words, the envconfig tag, ignored)
// and converts the values, so that a value means the same as it would to
// envconfig.Process. The lookup is this package's own: envconfig reads only
// the process environment, stops at the first bad variable and repeats the
// bad value in its error. Load takes a getenv function instead (os.Getenv in
// production, a map in tests, which may then run in parallel).
package envconf
