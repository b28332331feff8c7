package postgres

// Queued is how many lookups wait for a loader (for tests that must know a
// lookup is queued before they release the loader).
func (s *Store) Queued() int { return len(s.gets) }

// SearchQuery is searchQuery, for the tests that EXPLAIN what Search sends.
var SearchQuery = searchQuery

// RecentPageSQL and RecentOrdersQuery are the warm-up's page queries, for
// the test that EXPLAINs them.
var RecentPageSQL = recentPageSQL

const RecentOrdersQuery = recentOrdersQuery

// QueuedSearches is how many searches wait for a searcher.
func (s *Store) QueuedSearches() int { return len(s.searches) }
