//! The one palette procmem draws labels with, so a class has one colour in every view.

/// A class's (or cluster's) colour: Tableau 10, then golden-angle hues for further classes.
/// Every view of labels uses it: the Map panel and `memory map --png`, kNN and k-means
/// segmentation maps in the CLI and the Segmentation panel.
pub fn class_rgb(class: u32) -> [u8; 3] {
    const TABLEAU: [[u8; 3]; 10] = [
        [78, 121, 167],
        [242, 142, 43],
        [225, 87, 89],
        [118, 183, 178],
        [89, 161, 79],
        [237, 201, 72],
        [176, 122, 161],
        [255, 157, 167],
        [156, 117, 95],
        [186, 176, 172],
    ];
    match TABLEAU.get(class as usize) {
        Some(&c) => c,
        None => {
            let h = (class as f32 * 0.618_034).fract() * 6.0;
            let x = 1.0 - (h % 2.0 - 1.0).abs();
            let (r, g, b) = match h as u32 {
                0 => (1.0, x, 0.0),
                1 => (x, 1.0, 0.0),
                2 => (0.0, 1.0, x),
                3 => (0.0, x, 1.0),
                4 => (x, 0.0, 1.0),
                _ => (1.0, 0.0, x),
            };
            [r, g, b].map(|v: f32| (60.0 + 180.0 * v) as u8)
        }
    }
}
