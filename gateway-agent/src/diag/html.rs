//! The page as HTML: server-rendered, one document with its style inline and no script, so it
//! works without internet and on a phone. Every value printed is escaped: resource names,
//! messages and paths are user input.

use std::fmt::Write;

use super::{ClusterView, Condition, Detail, HostView, Page, ResourceName, ResourceRow, RouteRow};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:80rem;padding:.5rem;color:#222}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.5rem}h3{font-size:1rem}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}\
th,td{border:1px solid #ccc;padding:.25rem .4rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}code,pre{font-family:ui-monospace,monospace;word-break:break-all;white-space:pre-wrap}\
.error{background:#fde8e8}.False{color:#b00}.True{color:#070}.Unknown{color:#a60}\
.dot{display:inline-block;width:.8rem;height:.8rem;border-radius:50%;margin-right:.3rem}\
.green{background:#2a2}.yellow{background:#db0}.red{background:#d22}.grey{background:#aaa}\
nav a{margin-right:1rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dd{margin:0}";

/// Escapes `text` for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `text` for a URL's query value.
fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    )
}

fn link(r: &ResourceName) -> String {
    format!(
        "<a href=\"?resource={}\">{} {}/{}</a>",
        query_value(&format!("{}/{}/{}", r.kind, r.namespace, r.name)),
        escape(&r.kind),
        escape(&r.namespace),
        escape(&r.name)
    )
}

/// The whole page; only the resources in error when `errors_only`.
pub fn page(p: &Page, errors_only: bool) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Legate gateway diagnostics</h1><nav><a href=\"?\">all</a>\
         <a href=\"?errors=true\">errors only</a><a href=\"?json=true\">JSON</a></nav>"
    );
    overview(&mut b, p);
    resources(&mut b, p, errors_only);
    if !errors_only {
        routes(&mut b, p);
        clusters(&mut b, &p.clusters, p.envoy.health_read);
    }
    document("Legate diagnostics", &b)
}

fn overview(b: &mut String, p: &Page) {
    let e = &p.envoy;
    let version = |v: &Option<String>| v.as_deref().map_or("none".to_owned(), escape);
    let _ = write!(
        b,
        "<dl><dt>Gateway</dt><dd>{}</dd><dt>ambassador_id</dt><dd>{}</dd><dt>Replica</dt><dd>{}</dd>\
         <dt>Envoy acknowledged</dt><dd id=\"acknowledged\"><code>{}</code></dd>\
         <dt>Published</dt><dd><code>{}</code></dd><dt>Envoys connected</dt><dd>{}</dd>",
        escape(&p.gateway.source),
        escape(&p.gateway.ambassador_id),
        escape(&p.gateway.replica),
        version(&e.acknowledged),
        version(&e.published),
        e.connected,
    );
    if let Some(refused) = &e.refused {
        let _ = write!(
            b,
            "<dt>Envoy refused</dt><dd class=\"False\">{}</dd>",
            escape(refused)
        );
    }
    let s = &p.summary;
    let _ = write!(
        b,
        "<dt>Resources</dt><dd>{} ({} in error)</dd><dt>Routes</dt><dd>{}</dd><dt>Clusters</dt><dd>{}</dd></dl>",
        s.resources, s.errors, s.routes, s.clusters
    );
}

fn condition(c: &Condition) -> String {
    format!(
        "<span class=\"{}\">{}</span> {}<br><small>{}</small>",
        escape(c.status),
        escape(c.status),
        escape(&c.reason),
        escape(&c.message)
    )
}

fn resources(b: &mut String, p: &Page, errors_only: bool) {
    b.push_str("<h2 id=\"resources\">Resources</h2>");
    if !p.unreadable.is_empty() {
        b.push_str("<h3>Not read</h3><ul>");
        for u in &p.unreadable {
            let _ = write!(b, "<li class=\"error\">{}</li>", escape(u));
        }
        b.push_str("</ul>");
    }
    b.push_str(
        "<div class=\"scroll\"><table id=\"resource-table\"><thead><tr><th>Resource</th>\
         <th>Accepted</th><th>Programmed</th></tr></thead><tbody>",
    );
    let rows = p.resources.iter().filter(|r| r.error || !errors_only);
    for r in rows {
        resource_row(b, r);
    }
    b.push_str("</tbody></table></div>");
}

fn resource_row(b: &mut String, r: &ResourceRow) {
    let name = ResourceName {
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    };
    let _ = write!(
        b,
        "<tr{}><td>{}</td><td>{}</td><td>{}</td></tr>",
        if r.error { " class=\"error\"" } else { "" },
        link(&name),
        condition(&r.accepted),
        condition(&r.programmed)
    );
}

fn routes(b: &mut String, p: &Page) {
    b.push_str("<h2 id=\"routes\">Routes</h2><p>In the order Envoy evaluates them: the first that matches answers.</p>");
    for l in &p.listeners {
        let _ = write!(
            b,
            "<h3>Listener {} (port {}, {})</h3>",
            escape(&l.name),
            l.port,
            escape(&l.security_model)
        );
        for h in &l.hosts {
            host(b, h);
        }
    }
}

fn host(b: &mut String, h: &HostView) {
    let tls = match &h.tls {
        Some(names) if names.is_empty() => " — TLS, any SNI".to_owned(),
        Some(names) => format!(" — TLS, SNI {}", escape(&names.join(", "))),
        None => String::new(),
    };
    let _ = write!(
        b,
        "<p>Host <code>{}</code>{tls}: domains <code>{}</code></p>",
        escape(&h.name),
        escape(&h.domains.join(", "))
    );
    b.push_str("<div class=\"scroll\"><table class=\"route-table\"><thead><tr><th>#</th><th>Match</th><th>Precedence</th><th>Action</th><th>Mapping</th></tr></thead><tbody>");
    for r in &h.routes {
        route_row(b, r);
    }
    b.push_str("</tbody></table></div>");
}

fn route_row(b: &mut String, r: &RouteRow) {
    let mut matches = format!("<code>{}</code>", escape(&r.path));
    for h in &r.headers {
        let _ = write!(matches, "<br>header <code>{}</code>", escape(h));
    }
    for q in &r.query {
        let _ = write!(matches, "<br>query <code>{}</code>", escape(q));
    }
    if !r.variant.is_empty() {
        let _ = write!(matches, "<br><em>{}</em>", escape(r.variant));
    }
    let mut action = escape(&r.action);
    if let Some(rewrite) = &r.rewrite {
        let _ = write!(action, "<br>rewrite <code>{}</code>", escape(rewrite));
    }
    if let Some(share) = &r.canary {
        let _ = write!(action, "<br>canary: {}", escape(share));
    }
    let _ = write!(
        b,
        "<tr><td>{}</td><td>{matches}</td><td>{}</td><td>{action}</td><td>{}</td></tr>",
        r.order,
        r.precedence,
        link(&r.source)
    );
}

fn clusters(b: &mut String, clusters: &[ClusterView], health_read: bool) {
    b.push_str("<h2 id=\"clusters\">Upstream clusters</h2>");
    if !health_read {
        b.push_str("<p>Envoy's view of the endpoints could not be read: no health shown.</p>");
    }
    b.push_str("<div class=\"scroll\"><table id=\"cluster-table\"><thead><tr><th>Cluster</th><th>Upstream</th><th>Success rate</th><th>Endpoints</th><th>Used by</th></tr></thead><tbody>");
    for c in clusters {
        let rate = c
            .success_rate
            .map_or("no requests".to_owned(), |r| format!("{r:.1}%"));
        let endpoints: Vec<String> = c
            .endpoints
            .iter()
            .map(|e| {
                format!(
                    "<code>{}</code> {} ({} requests, {} errors)",
                    escape(&e.address),
                    escape(&e.health),
                    e.requests,
                    e.errors
                )
            })
            .collect();
        let users: Vec<String> = c.used_by.iter().map(link).collect();
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td><td><span class=\"dot {}\"></span>{rate}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            escape(&c.upstream),
            c.colour,
            endpoints.join("<br>"),
            users.join("<br>")
        );
    }
    b.push_str("</tbody></table></div>");
}

/// One resource: its verdict, what it wrote, the routes and clusters made from it, its IR.
pub fn detail(d: &Detail) -> String {
    let mut b = String::new();
    let title = format!("{} {}/{}", d.name.kind, d.name.namespace, d.name.name);
    let _ = write!(
        b,
        "<h1>{}</h1><nav><a href=\"?\">all</a><a href=\"?errors=true\">errors only</a></nav>",
        escape(&title)
    );
    if let Some(r) = &d.verdict {
        let _ = write!(
            b,
            "<dl><dt>Accepted</dt><dd>{}</dd><dt>Programmed</dt><dd>{}</dd></dl>",
            condition(&r.accepted),
            condition(&r.programmed)
        );
    }
    let _ = write!(b, "<h2>Resource</h2><pre>{}</pre>", escape(&d.resource));
    b.push_str("<h2>Envoy routes made from it</h2>");
    for (place, r) in &d.routes {
        let _ = write!(
            b,
            "<p>{}</p><div class=\"scroll\"><table class=\"route-table\"><tbody>",
            escape(place)
        );
        route_row(&mut b, r);
        b.push_str("</tbody></table></div>");
    }
    if d.routes.is_empty() {
        b.push_str("<p>None.</p>");
    }
    clusters(&mut b, &d.clusters, true);
    let _ = write!(b, "<h2>IR</h2><pre>{}</pre>", escape(&d.ir));
    let _ = write!(b, "<h2>Envoy objects</h2><pre>{}</pre>", escape(&d.envoy));
    document(&title, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(query_value("Mapping/a b/<x>"), "Mapping%2Fa+b%2F%3Cx%3E");
    }
}
