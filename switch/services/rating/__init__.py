"""Call rating: tariffs as versioned data, the rater, the credit limit, invoice exports."""
