//! "Did you mean" suggestions for misspelled names.
//!
//! This module only ranks candidate names by edit distance (strsim's
//! Damerau-Levenshtein, so a swapped pair of letters counts as one edit). It
//! never decides whether a name is valid.

/// Returns the candidate closest to `name`, if one is close enough to be a
/// likely typo: at most one edit for names of up to five characters, and up
/// to a third of the name's length for longer ones. A name of three or more
/// characters is also compared with the start of each longer candidate, so
/// that a misspelled short form (`trian`) finds `train_model`. Ties go to
/// the earlier candidate.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = name.chars().count();
    let limit = (length / 3).max(1);
    // Ranks are twice the distance, plus one for a match of the start
    // only, so that a whole-name match wins a tie.
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let whole = strsim::damerau_levenshtein(name, candidate);
        let mut rank = (whole <= limit).then_some(2 * whole);
        if length >= 3 && candidate.chars().count() > length {
            let start: String = candidate.chars().take(length).collect();
            let distance = strsim::damerau_levenshtein(name, &start);
            if distance <= limit {
                rank = Some(rank.map_or(2 * distance + 1, |r| r.min(2 * distance + 1)));
            }
        }
        if let Some(rank) = rank
            && best.is_none_or(|(r, _)| rank < r)
        {
            best = Some((rank, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Formats "did you mean `x`?" for the closest candidate, if any.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Formats a list of names as "`a`, `b`, `c`", or "none" when empty.
pub(crate) fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    if quoted.is_empty() {
        "none".to_string()
    } else {
        quoted.join(", ")
    }
}

/// Combines a "did you mean" suggestion with the list of valid names:
/// "did you mean `b`? valid names: `a`, `b`".
pub(crate) fn help<'a>(
    name: &str,
    what: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    let listed = format!("{what}: {}", list(candidates.clone()));
    match did_you_mean(name, candidates) {
        Some(suggestion) => format!("{suggestion} {listed}"),
        None => listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swapped_letters_are_close() {
        assert_eq!(closest("trian", ["evaluate", "train"]), Some("train"));
    }

    #[test]
    fn missing_letter_is_close() {
        assert_eq!(
            closest("max_dpth", ["learning_rate", "max_depth"]),
            Some("max_depth")
        );
    }

    #[test]
    fn misspelled_start_finds_longer_name() {
        let steps = ["ingest_data", "clean_data", "train_model", "evaluation"];
        assert_eq!(closest("trian", steps), Some("train_model"));
        assert_eq!(closest("evaluate", steps), Some("evaluation"));
        // A whole-name typo beats a matching start.
        assert_eq!(closest("trian", ["train_model", "train"]), Some("train"));
        // Short names are not matched by their start.
        assert_eq!(closest("tr", ["train_model"]), None);
    }

    #[test]
    fn unrelated_name_has_no_suggestion() {
        assert_eq!(closest("zzz", ["train", "evaluate"]), None);
    }

    #[test]
    fn help_lists_candidates() {
        assert_eq!(
            help("stpes", "valid keys", ["name", "steps"]),
            "did you mean `steps`? valid keys: `name`, `steps`"
        );
        assert_eq!(help("zzz", "valid keys", ["name"]), "valid keys: `name`");
    }
}
