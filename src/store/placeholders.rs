//! Numbered SQL placeholders for multi-row statements (both backends read `$n`).

/// `($1, $2, $3), ($4, $5, $6), ...`: `rows` groups of `width` numbered placeholders.
pub(super) fn placeholders(rows: usize, width: usize) -> String {
    numbered(&mut 1, rows, width)
}

/// As `placeholders`, numbering from `*next` (and advancing it): several lists in one statement.
pub(super) fn numbered(next: &mut usize, rows: usize, width: usize) -> String {
    let first = *next;
    *next += rows * width;
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + r * width + c).to_string());
        }
        out.push(')');
    }
    out
}
