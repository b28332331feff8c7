package postgres

// Queued is how many lookups wait for a loader (for tests that must know a
// lookup is queued before they release the loader).
func (s *Store) Queued() int { return len(s.gets) }

// SearchQuery is searchQuery, for the tests that EXPLAIN what Search sends.
var SearchQuery = searchQuery

// RecentPageSQL and RecentOrdersPage are the statements of the warm-up's
// pages, the orders' and the items', for the test that EXPLAINs them.
func RecentPageSQL(from string, bounded bool, limit int) (orders, items string) {
	q := recentPageSQL(from, bounded, limit)
	return q.orders, q.items
}

var RecentOrdersPage = [2]string{recentOrdersPage.orders, recentOrdersPage.items}

// QueuedSearches is how many searches wait for a searcher.
func (s *Store) QueuedSearches() int { return len(s.searches) }
