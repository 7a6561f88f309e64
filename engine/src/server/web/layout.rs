//! The frame every page shares: the document head, the navigation bar,
//! the footer, and the pages for a missing resource and a server failure.
//!
//! Pages are built with maud's `html!`, which escapes every interpolated
//! value, so no string reaches the page unescaped unless it is wrapped in
//! `PreEscaped`, which this module never does.

use maud::{DOCTYPE, Markup, html};

/// The navigation entries, to mark the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Predict,
    Models,
    Runs,
    None,
}

/// The header's view of the server: the served model's `name/version`,
/// `None` before one is loaded, and the name of the model it serves.
pub(super) struct Chrome<'a> {
    pub(super) served: Option<String>,
    pub(super) model_name: &'a str,
}

/// Wraps a page body in the document with the navigation bar.
pub(super) fn page(title: &str, nav: Nav, chrome: &Chrome<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · flowrun" }
                link rel="stylesheet" href=(super::STYLE_PATH);
                link rel="icon" href=(super::ICON_PATH) type="image/svg+xml";
            }
            body {
                header.topbar {
                    nav.wrap aria-label="Main" {
                        a.brand href="/" { "flowrun" }
                        a href="/" aria-current=[(nav == Nav::Predict).then_some("page")] { "Predict" }
                        a href="/models" aria-current=[(nav == Nav::Models).then_some("page")] { "Models" }
                        a href="/runs" aria-current=[(nav == Nav::Runs).then_some("page")] { "Runs" }
                        span.served {
                            @match &chrome.served {
                                Some(label) => { "Serving " strong { (label) } }
                                None => { "No version of " code { (chrome.model_name) } " is deployed" }
                            }
                        }
                    }
                }
                main.wrap { (body) }
                footer.wrap {
                    "flowrun " (env!("CARGO_PKG_VERSION"))
                    " · the scoring API is at "
                    code { "POST /invocations" }
                    " and "
                    a href="/metadata" { code { "GET /metadata" } }
                }
            }
        }
    }
}

/// Builds the body of a 404 page: what was not found and a link back.
pub(super) fn not_found(message: &str, back_href: &str, back_label: &str) -> Markup {
    html! {
        section.card.notice {
            h1 { "Not found" }
            p { (message) }
            p { a.button href=(back_href) { (back_label) } }
        }
    }
}

/// Builds the body of a page that could not be built. The cause goes to
/// the log, never to the page.
pub(super) fn failure() -> Markup {
    html! {
        section.card.notice {
            h1 { "This page could not be shown" }
            p {
                "The server failed to read the data for this page. The details are in the "
                "server log (" code { ".flowrun/server/server.log" } " for a daemon). "
                "Reload the page to try again."
            }
            p { a.button href="/" { "Back to Predict" } }
        }
    }
}

/// Builds a coloured status label whose colour `class` picks.
pub(super) fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}
