"""The viewer's pages, one module each, in Norwegian paths as the users read them. Each module
has module-level handlers and its `ROUTES`; a handler gets what it needs (settings, gRPC stubs,
sessions, templates) from the application's state (`services.viewer.web.web_of`), which
`services.viewer.app.create_app` fills.

    common    /                          → the worklist
              /helse                     the process answers
              (and the two error pages: sign in again, and a Norwegian problem page)
    signin    /logg-inn                  sign in (development, when turned on: a municipality
                                         of the directory; always: paste a token from HelseID)
              /logg-ut                   sign out (POST)
    worklist  /arbeidsliste              the municipality's patients, overdue first
                                         (POST: a new filter or search)
              /arbeidsliste/innhold      the same list's rows, re-fetched on a change
    patient   /pasient                   open a patient by fødselsnummer (POST; → /pasient/{ref})
              /pasient/{ref}             one patient's pathway: the picture, events,
                                         medications, tasks
              /pasient/{ref}/innhold     the same page's body, re-fetched on a change
    live      /pasient/{ref}/hendelser   server-sent events: one per change of the pathway
              /arbeidsliste/hendelser    server-sent events: one per change of a listed patient
    statistics /statistikk               the municipality's numbers per month: charts and a
                                         table (`fra=`/`til=` months in the address)
    citizen   /innbygger, /innbygger/... the citizen's own page and its sign-in and sign-out
"""
