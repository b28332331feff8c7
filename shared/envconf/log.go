package envconf

import (
	"errors"
	"log/slog"
	"strings"
)

// LogLevel is the least severe level logged: debug, info, warn or error
// (in any case). It is a slog.Leveler, for slog.HandlerOptions.Level.
type LogLevel slog.Level

// UnmarshalText accepts debug, info, warn or error.
func (l *LogLevel) UnmarshalText(text []byte) error {
	switch strings.ToLower(string(text)) {
	case "debug":
		*l = LogLevel(slog.LevelDebug)
	case "info":
		*l = LogLevel(slog.LevelInfo)
	case "warn":
		*l = LogLevel(slog.LevelWarn)
	case "error":
		*l = LogLevel(slog.LevelError)
	default:
		return errors.New("must be debug, info, warn or error")
	}
	return nil
}

// Level returns the slog level.
func (l LogLevel) Level() slog.Level { return slog.Level(l) }

func (l LogLevel) String() string { return slog.Level(l).String() }

// LogFormat is how log lines are written: LogJSON or LogText.
type LogFormat string

// The log formats.
const (
	LogJSON LogFormat = "json" // one JSON object a line, for collectors
	LogText LogFormat = "text" // for a terminal (coloured by the services)
)

// UnmarshalText accepts json or text.
func (f *LogFormat) UnmarshalText(text []byte) error {
	switch v := LogFormat(text); v {
	case LogJSON, LogText:
		*f = v
		return nil
	}
	return errors.New("must be json or text")
}
