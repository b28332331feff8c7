// Package pii masks the personal data of an order for callers that may read
// orders but not the people behind them (credentials without the
// orders:pii grant).
//
// # Which fields are personal
//
// Of model.Order, five fields of the delivery identify or reach a person
// and are masked:
//
//   - delivery.name: the recipient's name. Each word keeps its first letter:
//     "Иван Петров" becomes "И*** П***".
//   - delivery.phone: reaches the person directly. The "+" and the country
//     calling code stay, and the last four digits when at least five others
//     stay hidden: "+79161234567" becomes "+7******4567", "+9720000000"
//     (a seven-digit national number) becomes "+972******".
//   - delivery.email: reaches the person and often spells their name. The
//     local part keeps its first letter, the domain stays:
//     "test@gmail.com" becomes "t***@gmail.com". A personal domain
//     ("ivan@petrov.family") still says who it is; the domain is kept all
//     the same because support needs it to tell a mistyped provider
//     (gmial.com) from an undeliverable address.
//   - delivery.address: with the city, it is where the person lives. Every
//     word is hidden whole, "Ploshad Mira 15" becomes "*** *** ***":
//     a street's initials in a known city narrow it to a handful of
//     streets, while a name's initials do not single out one person.
//   - delivery.zip: some postal codes cover a few households (UK
//     postcodes, Israel's seven digits), so the zip is hidden whole ("***").
//
// Kept as they are: delivery.city and delivery.region, which name a town
// or a province that many people share and which support and logistics
// need to route a parcel (Amazon's order API also returns city, region and
// country without its restricted-data grant); customer_id, a pseudonym that
// only the shop's own customer database (with its own access control)
// resolves to a person, and which support needs to find the account; and
// everything else (payment, items, identifiers), which describes the order,
// not the person.
//
// # How values are masked
//
// The mask character is "*". Masks have a fixed width (three for a word,
// six for a phone's hidden digits, three for a zip), so a masked value does
// not tell how long the original was: a short name or a long one mask the
// same. The number of words of a name or an address stays visible. A word
// keeps its first rune only when that rune is a letter (a house number's
// first digit or an emoji is hidden too); runes, not bytes, so Cyrillic and
// other multi-byte text never splits into invalid UTF-8.
//
// Masking is deterministic (the same input gives the same output, so the
// masked view can be cached and get a stable ETag) and idempotent (masking
// a masked order changes nothing), and it keeps the JSON shape: every field
// is still there with its name and type. An empty field stays empty. A
// masked order need not pass model validation (a masked e-mail may have no
// "@", a masked phone no digits after its country code); it is output only.
package pii
