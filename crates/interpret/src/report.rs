//! The run's `report.html`: one self-contained page (CSS inline, no script, images as PNG files
//! beside it) with the dense-vs-sparse table, the path plots, one section per class listing the
//! features the sparse layer uses and the dense layer's top features, each with its prototypes
//! and LIME pictures, and any further sections (debugging results).

use std::fmt::Write;
use std::path::Path;

use crate::InterpretError;

/// A picture in the report: `src` relative to the report's folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub src: String,
    pub alt: String,
    pub caption: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// An example shown as text with its activation (or score).
#[derive(Debug, Clone, PartialEq)]
pub struct TextExample {
    pub text: String,
    pub value: f32,
    /// e.g. the true label.
    pub note: String,
}

/// One deep feature as a class section shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureCard {
    pub feature: usize,
    /// The layer's weight of this feature for the class.
    pub weight: f32,
    /// One line of numbers (LIME R², activation range, …).
    pub stats: String,
    pub top_texts: Vec<TextExample>,
    pub bottom_texts: Vec<TextExample>,
    pub figures: Vec<Figure>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassSection {
    pub name: String,
    pub intro: String,
    pub sparse: Vec<FeatureCard>,
    /// Features the sparse layer uses for this class that are not shown.
    pub sparse_hidden: usize,
    pub dense: Vec<FeatureCard>,
    pub figures: Vec<Figure>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Paragraph(String),
    List(Vec<String>),
    Table(Table),
    Figures(Vec<Figure>),
    Examples(Vec<TextExample>),
}

/// A section of its own (e.g. the debugging results).
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: String,
    pub title: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub title: String,
    pub facts: Vec<(String, String)>,
    pub table: Option<Table>,
    pub figures: Vec<Figure>,
    pub classes: Vec<ClassSection>,
    pub sections: Vec<Section>,
    pub footer: String,
}

/// HTML-escape text (also safe inside attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0; color: #1d232b; background: #f6f7f9; line-height: 1.45; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { font-size: 1.7em; margin: 0 0 6px; }
h2 { font-size: 1.35em; margin: 34px 0 10px; border-bottom: 2px solid #d8dde4; padding-bottom: 4px; }
h3 { font-size: 1.1em; margin: 22px 0 8px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 0.92em; }
dl.facts dt { color: #5a6472; }
dl.facts dd { margin: 0; word-break: break-word; }
nav { font-size: 0.92em; margin: 12px 0; }
nav a { margin-right: 12px; }
table { border-collapse: collapse; background: #fff; font-size: 0.92em; margin: 8px 0; }
caption { caption-side: top; text-align: left; color: #5a6472; padding-bottom: 4px; }
th, td { border: 1px solid #d8dde4; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 8px 0; display: inline-block; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #d8dde4; background: #fff; }
figcaption { font-size: 0.85em; color: #5a6472; max-width: 560px; }
.cards { display: flex; flex-direction: column; gap: 14px; }
.card { background: #fff; border: 1px solid #d8dde4; border-radius: 6px; padding: 10px 14px; }
.card h4 { margin: 0 0 4px; font-size: 1em; }
.weight.pos { color: #1a7f37; }
.weight.neg { color: #b42318; }
.stats { font-size: 0.85em; color: #5a6472; }
.examples { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 18px; }
.examples ol { margin: 4px 0; padding-left: 22px; font-size: 0.9em; }
.examples li span.v { color: #5a6472; font-variant-numeric: tabular-nums; }
.muted { color: #5a6472; font-size: 0.9em; }
"#;

fn render_table(out: &mut String, t: &Table) {
    out.push_str("<table>");
    if !t.caption.is_empty() {
        let _ = write!(out, "<caption>{}</caption>", escape(&t.caption));
    }
    out.push_str("<thead><tr>");
    for h in &t.header {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
}

fn render_figure(out: &mut String, f: &Figure) {
    let _ = write!(
        out,
        "<figure><img src=\"{}\" alt=\"{}\">",
        escape(&f.src),
        escape(&f.alt)
    );
    if !f.caption.is_empty() {
        let _ = write!(out, "<figcaption>{}</figcaption>", escape(&f.caption));
    }
    out.push_str("</figure>\n");
}

fn render_examples(out: &mut String, title: &str, examples: &[TextExample]) {
    let _ = write!(out, "<div><strong>{}</strong><ol>", escape(title));
    for e in examples {
        let _ = write!(
            out,
            "<li>{} <span class=\"v\">({:.3}{}{})</span></li>",
            escape(&e.text),
            e.value,
            if e.note.is_empty() { "" } else { ", " },
            escape(&e.note)
        );
    }
    out.push_str("</ol></div>");
}

/// A card; `id` is unique in the page (the same feature can be shown by several classes).
fn render_card(out: &mut String, c: &FeatureCard, id: &str) {
    let sign = if c.weight >= 0.0 { "pos" } else { "neg" };
    let _ = write!(
        out,
        "<div class=\"card\" id=\"{id}\"><h4>feature {feat} <span class=\"weight {sign}\">weight {w:+.4}</span></h4>",
        id = escape(id),
        feat = c.feature,
        w = c.weight
    );
    if !c.stats.is_empty() {
        let _ = write!(out, "<div class=\"stats\">{}</div>", escape(&c.stats));
    }
    if !c.top_texts.is_empty() || !c.bottom_texts.is_empty() {
        out.push_str("<div class=\"examples\">");
        render_examples(out, "most activating", &c.top_texts);
        render_examples(out, "least activating", &c.bottom_texts);
        out.push_str("</div>");
    }
    for f in &c.figures {
        render_figure(out, f);
    }
    out.push_str("</div>\n");
}

fn render_block(out: &mut String, b: &Block) {
    match b {
        Block::Paragraph(p) => {
            let _ = writeln!(out, "<p>{}</p>", escape(p));
        }
        Block::List(items) => {
            out.push_str("<ul>");
            for i in items {
                let _ = write!(out, "<li>{}</li>", escape(i));
            }
            out.push_str("</ul>\n");
        }
        Block::Table(t) => render_table(out, t),
        Block::Figures(fs) => fs.iter().for_each(|f| render_figure(out, f)),
        Block::Examples(es) => {
            out.push_str("<div class=\"examples\">");
            render_examples(out, "", es);
            out.push_str("</div>");
        }
    }
}

/// The id of a feature card of `layer` (`sparse`, `dense`) in a class's section.
pub fn card_id(class: &str, layer: &str, feature: usize) -> String {
    format!("{}-{layer}-f{feature}", anchor(class))
}

/// The id of a class's section (`report.html#…`).
pub fn anchor(name: &str) -> String {
    let a: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("class-{a}")
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<header><h1>{}</h1><dl class=\"facts\">",
        escape(&report.title),
        escape(&report.title)
    );
    for (k, v) in &report.facts {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
    }
    out.push_str("</dl><nav aria-label=\"sections\"><a href=\"#summary\">summary</a>");
    for c in &report.classes {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", anchor(&c.name), escape(&c.name));
    }
    for s in &report.sections {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", escape(&s.id), escape(&s.title));
    }
    out.push_str("</nav></header>\n<main>\n<section id=\"summary\"><h2>Dense vs sparse decision layer</h2>");
    if let Some(t) = &report.table {
        render_table(&mut out, t);
    }
    for f in &report.figures {
        render_figure(&mut out, f);
    }
    out.push_str("</section>\n");
    for c in &report.classes {
        let _ = write!(
            out,
            "<section id=\"{}\"><h2>Class: {}</h2>",
            anchor(&c.name),
            escape(&c.name)
        );
        if !c.intro.is_empty() {
            let _ = write!(out, "<p class=\"muted\">{}</p>", escape(&c.intro));
        }
        for f in &c.figures {
            render_figure(&mut out, f);
        }
        let _ = write!(
            out,
            "<h3>Sparse layer: the {} feature{} it uses</h3><div class=\"cards\">",
            c.sparse.len() + c.sparse_hidden,
            if c.sparse.len() + c.sparse_hidden == 1 {
                ""
            } else {
                "s"
            }
        );
        if c.sparse.is_empty() {
            out.push_str("<p class=\"muted\">The sparse layer uses no feature for this class (its score is the bias alone).</p>");
        }
        for card in &c.sparse {
            render_card(&mut out, card, &card_id(&c.name, "sparse", card.feature));
        }
        out.push_str("</div>");
        if c.sparse_hidden > 0 {
            let _ = write!(
                out,
                "<p class=\"muted\">{} more feature{} with smaller |weight| not shown (see interpret.json).</p>",
                c.sparse_hidden,
                if c.sparse_hidden == 1 { "" } else { "s" }
            );
        }
        let _ = write!(
            out,
            "<h3>Dense layer: its top {} features by |weight|</h3><div class=\"cards\">",
            c.dense.len()
        );
        for card in &c.dense {
            render_card(&mut out, card, &card_id(&c.name, "dense", card.feature));
        }
        out.push_str("</div></section>\n");
    }
    for s in &report.sections {
        let _ = write!(
            out,
            "<section id=\"{}\"><h2>{}</h2>",
            escape(&s.id),
            escape(&s.title)
        );
        s.blocks.iter().for_each(|b| render_block(&mut out, b));
        out.push_str("</section>\n");
    }
    let _ = write!(
        out,
        "</main>\n<footer><p class=\"muted\">{}</p></footer>\n</body></html>\n",
        escape(&report.footer)
    );
    out
}

/// Write `report` as `path` (atomically: a temporary file in the same folder, then rename),
/// after checking that every picture it names exists beside it.
pub fn write(path: &Path, report: &Report) -> Result<(), InterpretError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let all_figures = report
        .figures
        .iter()
        .chain(report.classes.iter().flat_map(|c| {
            c.figures
                .iter()
                .chain(c.sparse.iter().chain(&c.dense).flat_map(|card| &card.figures))
        }))
        .chain(report.sections.iter().flat_map(|s| {
            s.blocks.iter().flat_map(|b| match b {
                Block::Figures(f) => f.as_slice(),
                _ => &[],
            })
        }));
    for f in all_figures {
        if !dir.join(&f.src).is_file() {
            return Err(InterpretError::Report {
                path: path.to_path_buf(),
                reason: format!("picture {} is missing", f.src),
            });
        }
        if f.alt.trim().is_empty() {
            return Err(InterpretError::Report {
                path: path.to_path_buf(),
                reason: format!("picture {} has no alt text", f.src),
            });
        }
    }
    let html = render(report);
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, html.as_bytes())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| InterpretError::Report {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_sections_and_checks_pictures() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("report")).unwrap();
        std::fs::write(dir.path().join("report/a.png"), b"x").unwrap();
        let fig = Figure {
            src: "report/a.png".into(),
            alt: "word cloud of feature 3".into(),
            caption: "c".into(),
        };
        let report = Report {
            title: "run <1>".into(),
            facts: vec![("dataset".into(), "a & b".into())],
            classes: vec![ClassSection {
                name: "pos itive".into(),
                sparse: vec![FeatureCard {
                    feature: 3,
                    weight: -0.5,
                    top_texts: vec![TextExample {
                        text: "<script>".into(),
                        value: 1.0,
                        note: String::new(),
                    }],
                    figures: vec![fig.clone()],
                    ..FeatureCard::default()
                }],
                ..ClassSection::default()
            }],
            ..Report::default()
        };
        let html = render(&report);
        assert!(html.contains("run &lt;1&gt;") && html.contains("a &amp; b"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("id=\"class-pos-itive\"") && html.contains("weight neg"));
        assert!(html.contains("id=\"class-pos-itive-sparse-f3\""));
        assert!(html.contains("alt=\"word cloud of feature 3\""));
        let path = dir.path().join("report.html");
        write(&path, &report).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("<!DOCTYPE html>"));
        let mut missing = report.clone();
        missing.classes[0].sparse[0].figures[0].src = "report/b.png".into();
        assert!(write(&path, &missing)
            .unwrap_err()
            .to_string()
            .contains("report/b.png is missing"));
        let mut no_alt = report;
        no_alt.classes[0].sparse[0].figures[0].alt = " ".into();
        assert!(write(&path, &no_alt)
            .unwrap_err()
            .to_string()
            .contains("no alt text"));
    }
}
