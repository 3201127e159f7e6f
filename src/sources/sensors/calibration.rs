//! Calibration: `value × scale + offset`, per quantity.

use crate::vocab::Quantity;

/// `value × scale + offset`, per quantity; a quantity without an entry has
/// scale 1 and offset 0. When a quantity appears more than once, the last
/// entry counts (the `with_*` setters replace instead of appending).
///
/// The config gives either one number for every quantity
/// ([`Calibration::uniform`], [`with_offset_all`](Calibration::with_offset_all))
/// or a table per quantity ([`with_offset`](Calibration::with_offset)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Calibration {
    pub offset: Vec<(Quantity, f64)>,
    pub scale: Vec<(Quantity, f64)>,
}

impl Calibration {
    /// The same offset and scale for every quantity.
    pub fn uniform(offset: f64, scale: f64) -> Calibration {
        Calibration::default().with_offset_all(offset).with_scale_all(scale)
    }

    pub fn with_offset(mut self, quantity: Quantity, offset: f64) -> Self {
        set(&mut self.offset, quantity, offset);
        self
    }

    pub fn with_scale(mut self, quantity: Quantity, scale: f64) -> Self {
        set(&mut self.scale, quantity, scale);
        self
    }

    pub fn with_offset_all(self, offset: f64) -> Self {
        Quantity::ALL.into_iter().fold(self, |c, q| c.with_offset(q, offset))
    }

    pub fn with_scale_all(self, scale: f64) -> Self {
        Quantity::ALL.into_iter().fold(self, |c, q| c.with_scale(q, scale))
    }

    /// The offset for `quantity` (0 when not given).
    pub fn offset_for(&self, quantity: Quantity) -> f64 {
        get(&self.offset, quantity).unwrap_or(0.0)
    }

    /// The scale for `quantity` (1 when not given).
    pub fn scale_for(&self, quantity: Quantity) -> f64 {
        get(&self.scale, quantity).unwrap_or(1.0)
    }

    /// `value × scale + offset`.
    pub fn apply(&self, quantity: Quantity, value: f64) -> f64 {
        value * self.scale_for(quantity) + self.offset_for(quantity)
    }
}

fn set(entries: &mut Vec<(Quantity, f64)>, quantity: Quantity, value: f64) {
    entries.retain(|(q, _)| *q != quantity);
    entries.push((quantity, value));
}

fn get(entries: &[(Quantity, f64)], quantity: Quantity) -> Option<f64> {
    entries.iter().rev().find(|(q, _)| *q == quantity).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_should_scale_then_offset_with_neutral_defaults() {
        let none = Calibration::default();
        assert_eq!(none.apply(Quantity::Pressure, 1013.2), 1013.2);

        let c = Calibration::default()
            .with_scale(Quantity::Temperature, 2.0)
            .with_offset(Quantity::Temperature, -0.5)
            .with_offset(Quantity::Humidity, 3.0);
        assert_eq!(c.apply(Quantity::Temperature, 10.0), 19.5);
        assert_eq!(c.apply(Quantity::Humidity, 40.0), 43.0);
        assert_eq!(c.apply(Quantity::Pressure, 1000.0), 1000.0);
    }

    #[test]
    fn calibration_setters_should_replace_and_uniform_should_cover_every_quantity() {
        let c = Calibration::uniform(1.0, 0.5).with_offset(Quantity::Humidity, -2.0);
        assert_eq!(c.apply(Quantity::Temperature, 20.0), 11.0);
        assert_eq!(c.apply(Quantity::Humidity, 20.0), 8.0);
        assert_eq!(c.apply(Quantity::Pressure, 20.0), 11.0);
        assert_eq!(c.offset.len(), 3, "{c:?}");
        // Entries pushed by hand: the last one wins.
        let by_hand = Calibration {
            offset: vec![(Quantity::Temperature, 1.0), (Quantity::Temperature, 2.0)],
            scale: vec![],
        };
        assert_eq!(by_hand.offset_for(Quantity::Temperature), 2.0);
    }
}
